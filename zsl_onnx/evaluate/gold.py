"""Hand labels from an annotation tool's export, keyed by record id.

- **Label Studio** (the project's JSON export): a task's gold label is the ``choices`` of its
  latest annotation that was not cancelled (``was_cancelled``), latest by ``updated_at`` then
  ``id``; its id is ``data.<id-field>``, else the task's ``id``. Tasks with no such annotation
  are skipped.
- **Argilla 2.x** (``dataset.records.to_json`` / ``to_list``): a record's gold label is the
  ``value`` of its ``responses[QUESTION]``; when annotators disagree the record is skipped
  and counted. Its id is ``fields.<id-field>``, ``metadata.<id-field>``, else the record's ``id``.

The gold side is held in memory: it is a hand-labelled sample, bounded by the export's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EvaluationError
from .predictions import Options, choices_of, label_list, record_key
from .readers import iter_rows

__all__ = ["GoldSet", "read_gold_export"]

Labels = tuple[str, ...]


@dataclass(frozen=True)
class GoldSet:
    labels: dict[str, Labels]  # record id -> its gold label(s)
    kind: str  # "Label Studio" or "Argilla"
    skipped: int  # records without a usable annotation (none, cancelled, empty, disagreeing)


def read_gold_export(path: Path, options: Options) -> GoldSet:
    """Every annotated record of the export; duplicate ids and an export with nothing usable are errors."""
    labels: dict[str, Labels] = {}
    kind, skipped, read = "", 0, 0
    gold_of: Callable[[dict[str, Any], Options], tuple[str | None, Labels | None]] | None = None
    for where, row in iter_rows(path, "gold export"):
        read += 1
        if gold_of is None:
            kind, gold_of = _kind(row, path)
        try:
            key, gold = gold_of(row, options)
        except EvaluationError as exc:
            raise EvaluationError(f"{path}: {where}: {exc}") from None
        if gold is None:
            skipped += 1
            continue
        if key is None:
            raise EvaluationError(f"{path}: {where} has no id (looked for {options.id_field!r}; name it with --id-field)")
        if key in labels:
            raise EvaluationError(f"{path}: the id {key[:80]!r} occurs twice in the gold export")
        labels[key] = gold
    if not read:
        raise EvaluationError(f"the gold export {path} holds no records")
    if not labels:
        raise EvaluationError(f"the gold export {path} holds no annotated record ({skipped} without an annotation)")
    return GoldSet(labels, kind, skipped)


def _kind(row: dict[str, Any], path: Path) -> tuple[str, Callable[[dict[str, Any], Options], tuple[str | None, Labels | None]]]:
    if "annotations" in row:
        return "Label Studio", _label_studio_gold
    if "responses" in row:
        return "Argilla", _argilla_gold
    raise EvaluationError(
        f"{path} is not a Label Studio export (tasks with 'annotations') nor an Argilla export "
        "(records with 'responses'); for gold labels inside the predictions use --gold-field"
    )


def _label_studio_gold(row: dict[str, Any], options: Options) -> tuple[str | None, Labels | None]:
    data = row.get("data") if isinstance(row.get("data"), dict) else {}
    key = record_key([data], options.id_field, row.get("id"))
    annotations = row.get("annotations")
    if not isinstance(annotations, list):
        raise EvaluationError("'annotations' is not a list")
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return key, None
    latest = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), _number(a.get("id"))))
    choices = choices_of(latest.get("result"), options.question)
    return key, label_list(choices, "the annotation's choices")


def _argilla_gold(row: dict[str, Any], options: Options) -> tuple[str | None, Labels | None]:
    places = [row.get(name) for name in ("fields", "metadata")]
    key = record_key([p for p in places if isinstance(p, dict)], options.id_field, row.get("id"))
    responses = row.get("responses") if isinstance(row.get("responses"), dict) else {}
    answers = responses.get(options.question)
    if answers is None and len(responses) == 1:
        answers = next(iter(responses.values()))
    if not isinstance(answers, list):
        return key, None
    given = [label_list(a.get("value"), "a response's value") for a in answers if isinstance(a, dict)]
    values = {tuple(sorted(v)) for v in given if v is not None}
    return key, values.pop() if len(values) == 1 else None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0
