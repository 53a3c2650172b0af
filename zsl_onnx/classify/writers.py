"""The records zsl-classify writes: input fields plus labels and scores, or Argilla 1.x records; as JSONL, CSV or TSV.

Label Studio tasks and Argilla 2.x records are shaped in ``annotation``.

``zsl_onnx.ray`` shapes its result columns with :func:`classified_fields` too, so a Ray Data
pipeline and the command write the same fields.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .records import Invalid, Record

__all__ = [
    "ARGILLA_LINE_FIELD",
    "RESULT_FIELDS",
    "THRESHOLD_FIELD",
    "argilla_record",
    "classified_fields",
    "csv_header",
    "output_fields",
    "refuse_collisions",
    "render",
]

RESULT_FIELDS = ("labels", "scores", "top_label", "top_score")
THRESHOLD_FIELD = "above_threshold"
ARGILLA_LINE_FIELD = "line"


def output_fields(fmt: str, threshold: float | None, prefix: str = "", text_fields: Sequence[str] = ()) -> list[str]:
    """The names the output adds to each record; an input field of the same name is refused.

    Argilla's are metadata keys (the line number), Label Studio's a ``data`` key (the text,
    unless the text is that very field). ``--truncation-field`` is checked on its own.
    """
    if fmt in ("argilla", "argilla-v1"):
        return [prefix + ARGILLA_LINE_FIELD]  # the metadata key holding the line number
    if fmt == "label-studio":
        return [name for name in (prefix + "text",) if name not in text_fields]
    names = [*RESULT_FIELDS, *([THRESHOLD_FIELD] if threshold is not None else [])]
    return [prefix + name for name in names]


def refuse_collisions(items: Iterable[Record | Invalid], reserved: Sequence[str]) -> Iterator[Record | Invalid]:
    """Turn records holding a field the output would overwrite into invalid ones."""
    for item in items:
        clash = [name for name in reserved if isinstance(item, Record) and name in item.fields]
        if clash:
            item = Invalid(
                item.line,
                f"has a field {clash[0]!r} that the output would overwrite; pass --field-prefix "
                "(e.g. --field-prefix zsl_) to give the output fields other names",
                json.dumps(item.fields, ensure_ascii=False),
            )
        yield item


def classified_fields(
    fields: dict[str, Any], labels: Sequence[str], scores: Sequence[float], threshold: float | None, prefix: str = ""
) -> dict[str, Any]:
    """The input fields plus the ranked labels and scores, the top label and its score.

    Scores are rounded first, so ``above_threshold`` always agrees with the ``top_score`` written.
    """
    rounded = [round(float(s), 6) for s in scores]
    out = dict(fields)
    out[prefix + "labels"] = list(labels)
    out[prefix + "scores"] = rounded
    out[prefix + "top_label"] = labels[0]
    out[prefix + "top_score"] = rounded[0]
    if threshold is not None:
        out[prefix + THRESHOLD_FIELD] = rounded[0] >= threshold
    return out


def argilla_record(
    record: Record, text_fields: Sequence[str], labels: Sequence[str], scores: Sequence[float], agent: str,
    multi_label: bool, prefix: str = "",
) -> dict[str, Any]:
    """Shaped like an Argilla text-classification record: text, prediction, metadata."""
    metadata = {key: value for key, value in record.fields.items() if key not in text_fields}
    return {
        "text": record.text,
        "prediction": [[label, round(float(score), 6)] for label, score in zip(labels, scores)],
        "prediction_agent": agent,
        "multi_label": multi_label,
        "metadata": {**metadata, prefix + ARGILLA_LINE_FIELD: record.line},
    }


def render(rows: Iterable[dict[str, Any]], fmt: str, columns: list[str] | None = None) -> str:
    """Rows as JSONL, CSV or TSV text (list fields are JSON-encoded in one cell)."""
    if fmt in ("jsonl", "argilla", "argilla-v1"):
        return "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", delimiter="\t" if fmt == "tsv" else ",")
    for row in rows:
        assert columns is not None
        writer.writerow([_cell(row.get(column, "")) for column in columns])
    return buffer.getvalue()


def csv_header(columns: list[str], fmt: str = "csv") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", delimiter="\t" if fmt == "tsv" else ",").writerow(columns)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
