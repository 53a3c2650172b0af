"""A classified chunk becomes output rows, rejects lines and counts.

Scores are rounded once, here, to ``SCORE_DIGITS``: the threshold then agrees with the
``top_score`` written, and the histogram counts what the user reads. A non-finite score
stops the run before anything of its chunk is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from zsl_onnx import __version__

from .annotation import argilla_record_v2, label_studio_task
from .checkpoint import Appender
from .chunks import ChunkClassifier
from .errors import InvalidRecordError, StopRunError
from .files import Files
from .options import ClassifyOptions
from .plan import Plan
from .records import Invalid, Record
from .report import BINS, Stats
from .truncation import DROPPED
from .writers import argilla_record, classified_fields, csv_header, render

__all__ = ["SCORE_DIGITS", "emit", "model_version", "tasks_text", "write_chunk"]

SCORE_DIGITS = 6


def write_chunk(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, files: Files,
                 chunk: list[Record | Invalid], results: list[dict[str, Any]]) -> None:
    """Append a chunk's results (in the order of its valid records) and its rejects."""
    valid = [item for item in chunk if isinstance(item, Record)]
    first = files.stats.written == 0  # a Label Studio task after another one needs a comma
    rows = _rows(options, plan, clf, files.stats, valid, results)
    text = ""
    if plan.output_format in ("csv", "tsv") and rows:
        if files.columns is None:
            files.columns = list(rows[0])
            text = csv_header(files.columns, plan.output_format)
        for row in rows:
            _fit_columns(row, files.columns, plan.input)
    if plan.output_format == "label-studio":
        text = tasks_text(rows, first)
    else:
        text += render(rows, plan.output_format, files.columns)
    bad = [item for item in chunk if isinstance(item, Invalid)]
    stats = files.stats
    stats.read += len(chunk)
    stats.written += len(rows)
    stats.rejected += len(bad)
    if bad and stats.first_reject is None:
        stats.first_reject = f"line {bad[0].line}: {bad[0].reason}"
    emit(files.out, text)
    if files.rejects is not None and bad:
        files.rejects.write("".join(
            json.dumps({"line": b.line, "reason": b.reason, "raw": b.raw}, ensure_ascii=False) + "\n" for b in bad
        ))


def tasks_text(rows: list[dict[str, Any]], first: bool) -> str:
    """Label Studio tasks as lines of the array: each after the first one written starts with a comma."""
    if not rows:
        return ""
    body = ",\n".join(json.dumps(row, ensure_ascii=False, allow_nan=False) for row in rows)
    return body if first else ",\n" + body


def _rows(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, stats: Stats,
          valid: list[Record], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output rows of the valid records; every classified record is counted, written or not."""
    rows: list[dict[str, Any]] = []
    for record, result in zip(valid, results):
        if not np.isfinite(result["scores"]).all():
            raise StopRunError(
                f"{plan.input}:{record.line}: the model returned a non-finite score (NaN or infinity) for this "
                "record; nothing of its chunk was written. The model file may be damaged (load it with "
                "verify=True) or overflows on this text (try the fp32 variant)."
            )
        # Round once, here: the threshold then agrees with the top_score that is written.
        labels, scores = result["labels"], [round(float(x), SCORE_DIGITS) for x in result["scores"]]
        _count(stats, record, labels, scores, int(result.get(DROPPED, 0)))
        if options.only_above and options.threshold is not None and scores[0] < options.threshold:
            continue
        extra = {} if options.truncation_field is None else {options.truncation_field: int(result.get(DROPPED, 0))}
        rows.append(_shape(options, plan, clf, record, labels, scores, extra))
    return rows


def _count(stats: Stats, record: Record, labels: list[str], scores: list[float], dropped: int) -> None:
    stats.classified += 1
    stats.top_labels[labels[0]] += 1
    stats.histogram[min(int(scores[0] * BINS), BINS - 1)] += 1
    if dropped:
        stats.truncated += 1
        stats.dropped += dropped
    if record.labels is not None:
        seen = set(stats.labels_seen)
        stats.labels_seen.extend(label for label in record.labels if label not in seen)


def _shape(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, record: Record, labels: list[str],
           scores: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    """One record in the output format."""
    fmt, prefix = plan.output_format, options.field_prefix
    if fmt == "argilla-v1":
        row = argilla_record(record, plan.text_fields, labels, scores, _agent(options, clf), options.multi_label, prefix)
        row["metadata"].update(extra)
        return row
    if fmt == "argilla":
        return argilla_record_v2(record, plan.text_fields, labels, scores, model_version(options, clf),
                                 options.multi_label, options.threshold, prefix, extra)
    if fmt == "label-studio":
        return label_studio_task(record, plan.text_fields, labels, scores, model_version(options, clf),
                                 options.multi_label, options.threshold, prefix, extra)
    return {**classified_fields(record.fields, labels, scores, options.threshold, prefix), **extra}


def _agent(options: ClassifyOptions, clf: ChunkClassifier) -> str:
    return f"zsl-onnx:{Path(str(options.model)).name}:{clf.variant}"


def model_version(options: ClassifyOptions, clf: ChunkClassifier) -> str:
    """What Label Studio and Argilla 2.x show as the source of a prediction: bundle, variant, zsl-onnx."""
    return f"{Path(str(options.model)).name} {clf.variant} zsl-onnx {__version__}"


def emit(out: Appender | None, text: str) -> None:
    """To the output file, or to stdout flushed at once so that a reader downstream sees each chunk."""
    if out is not None:
        out.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _fit_columns(row: dict[str, Any], columns: list[str], source: str) -> None:
    """CSV columns come from the first row: a field it lacks would be lost, so it is refused."""
    extra = [key for key in row if key not in columns]
    if extra:
        raise InvalidRecordError(
            f"{source}: a record has fields {extra} that the first record lacks, so they have no CSV "
            "column; write JSONL (-o out.jsonl) to keep records with varying fields."
        )
