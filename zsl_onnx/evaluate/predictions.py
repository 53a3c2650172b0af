"""Predictions in any of the package's output shapes, as one small record each.

Shapes, recognised from the first record and then required of every record:

- ``zsl-classify`` JSONL, CSV or TSV: ``labels``/``scores`` (ranked lists; JSON in a CSV cell),
  or only ``top_label``/``top_score``; with ``--field-prefix P`` the names start with ``P``.
- ``zsl-classify --format argilla``: ``prediction`` (``[[label, score], ...]``), fields in ``metadata``.
- Label Studio tasks: ``predictions[0].result[].value.choices`` and ``predictions[0].score``,
  fields in ``data``.
- Argilla 2.x records: ``suggestions[QUESTION]`` with ``value`` and ``score``, fields in
  ``fields`` and ``metadata``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EvaluationError
from .readers import iter_rows, parse_json

__all__ = ["Options", "Prediction", "read_predictions", "record_key", "label_list"]


@dataclass(frozen=True)
class Options:
    """How to find ids, gold labels and predictions in the records."""

    id_field: str = "id"
    gold_field: str | None = None
    field_prefix: str = ""
    question: str = "label"  # Label Studio's from_name, Argilla's question name
    multi_label: bool = False


@dataclass(frozen=True)
class Prediction:
    where: str
    key: str | None  # the record's id, None when it has none
    labels: tuple[str, ...]  # ranked by score, highest first
    scores: tuple[float, ...]
    gold: tuple[str, ...] | None  # from --gold-field; None when the record has no gold label


Extract = Callable[[dict[str, Any], Options], tuple[list[dict[str, Any]], Any, Any]]


def read_predictions(path: Path, options: Options) -> Iterator[Prediction]:
    """Each record of ``path`` as a Prediction; the shape of the first decides for all."""
    extract: Extract | None = None
    for where, row in iter_rows(path, "predictions"):
        if extract is None:
            extract = _shape(row, options, path, where)
        try:
            places, labels, scores = extract(row, options)
            own_id = row.get("id") if extract in (_label_studio, _argilla2) else None
            yield _prediction(where, places, labels, scores, options, own_id)
        except EvaluationError as exc:
            raise EvaluationError(f"{path}: {where}: {exc}") from None


def _shape(row: dict[str, Any], options: Options, path: Path, where: str) -> Extract:
    prefix = options.field_prefix
    if prefix + "labels" in row or prefix + "top_label" in row:
        return _zsl
    if "predictions" in row or isinstance(row.get("data"), dict):
        return _label_studio
    if "suggestions" in row:
        return _argilla2
    if "prediction" in row:
        return _zsl_argilla
    raise EvaluationError(
        f"{path}: {where} has none of {prefix}labels / {prefix}top_label (zsl-classify; other names need "
        "--field-prefix), predictions (Label Studio tasks), prediction or suggestions (Argilla)"
    )


def _zsl(row: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], Any, Any]:
    prefix = options.field_prefix
    if prefix + "labels" in row:
        return [row], _cell(row.get(prefix + "labels")), _cell(row.get(prefix + "scores"))
    return [row], [row.get(prefix + "top_label")], [_number_cell(row.get(prefix + "top_score"))]


def _zsl_argilla(row: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], Any, Any]:
    pairs = row.get("prediction")
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise EvaluationError("'prediction' is not a list of [label, score] pairs")
    return [_dict(row.get("metadata")), row], [p[0] for p in pairs], [p[1] for p in pairs]


def _label_studio(row: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], Any, Any]:
    predictions = row.get("predictions")
    if not isinstance(predictions, list) or not predictions or not isinstance(predictions[0], dict):
        raise EvaluationError("the task has no prediction")
    first = predictions[0]
    choices = choices_of(first.get("result"), options.question)
    if choices is None:
        raise EvaluationError("the prediction has no choices result")
    if options.multi_label or len(choices) != 1:
        raise EvaluationError(
            "a Label Studio prediction carries one score for all its choices, so it is evaluated "
            "single-label with exactly one choice"
        )
    return [_dict(row.get("data"))], choices, [first.get("score")]


def _argilla2(row: dict[str, Any], options: Options) -> tuple[list[dict[str, Any]], Any, Any]:
    suggestions = _dict(row.get("suggestions"))
    suggestion = suggestions.get(options.question)
    if suggestion is None and len(suggestions) == 1:
        suggestion = next(iter(suggestions.values()))
    if not isinstance(suggestion, dict):
        raise EvaluationError(f"no suggestion for the question {options.question!r} (name it with --question)")
    value, score = suggestion.get("value"), suggestion.get("score")
    labels = value if isinstance(value, list) else [value]
    scores = score if isinstance(score, list) else [score]
    return [_dict(row.get("fields")), _dict(row.get("metadata"))], labels, scores


def choices_of(result: Any, question: str) -> list[Any] | None:
    """The choices of a Label Studio result list: the item named ``question``, else the first choices item."""
    if not isinstance(result, list):
        return None
    items = [r for r in result if isinstance(r, dict) and isinstance(r.get("value"), dict)
             and "choices" in r["value"]]
    named = [r for r in items if r.get("from_name") == question]
    chosen = (named or items)[:1]
    return chosen[0]["value"]["choices"] if chosen else None


def _prediction(where: str, places: list[dict[str, Any]], labels: Any, scores: Any, options: Options,
                own_id: Any) -> Prediction:
    labels, scores = _labels_and_scores(labels, scores)
    key = record_key(places, options.id_field, own_id)
    gold = None
    if options.gold_field is not None:
        gold = label_list(_lookup(places, options.gold_field), f"the gold field {options.gold_field!r}")
    return Prediction(where, key, labels, scores, gold)


def _labels_and_scores(labels: Any, scores: Any) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Checked labels and scores, ranked by score (already so in zsl-classify's output)."""
    if type(labels) is not list or not labels or not all(type(x) is str and x for x in labels):
        raise EvaluationError("the predicted labels are not a non-empty list of non-empty strings")
    if type(scores) is not list or len(scores) != len(labels):
        raise EvaluationError("the scores are not a list as long as the labels")
    if not all(type(x) in (float, int) and 0.0 <= x <= 1.0 for x in scores):
        raise EvaluationError("a score is not a number from 0 to 1")
    if any(a < b for a, b in zip(scores, scores[1:])):
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])  # stable: ties keep the file's order
        labels, scores = [label for label, _ in ranked], [score for _, score in ranked]
    return tuple(labels), tuple(map(float, scores))


def record_key(places: Sequence[dict[str, Any]], id_field: str, own_id: Any = None) -> str | None:
    """The record's id as text (so 7 and "7" join): the first place holding ``id_field``, else
    ``own_id`` (a Label Studio task's or an Argilla record's own id); None when there is none."""
    value = _lookup(places, id_field)
    if value is None or value == "":
        value = own_id
    if value is None or value == "":
        return None
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise EvaluationError(f"the id field {id_field!r} is not a string or a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def label_list(value: Any, what: str) -> tuple[str, ...] | None:
    """Gold labels: a string, a list of strings, or a CSV cell holding a JSON list; None when empty."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            value = parse_json(value)
        except ValueError:
            pass  # a label that merely looks like a list
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(x, str) and x for x in value):
        return tuple(dict.fromkeys(value))
    raise EvaluationError(f"{what} is not a label or a list of labels")


def _lookup(places: Sequence[dict[str, Any]], name: str) -> Any:
    for place in places:
        if name in place:
            return place[name]
    return None


def _cell(value: Any) -> Any:
    """A list field, JSON-decoded when it came from a CSV cell."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return parse_json(value)
        except ValueError:
            raise EvaluationError("a list cell is not valid JSON") from None
    return value


def _number_cell(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise EvaluationError("the top score is not a number") from None
        return number if math.isfinite(number) else None
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
