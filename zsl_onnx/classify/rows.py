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

from .checkpoint import Appender
from .chunks import ChunkClassifier
from .errors import InvalidRecordError, StopRunError
from .files import Files
from .options import ClassifyOptions
from .plan import Plan
from .records import Invalid, Record
from .report import BINS, Stats
from .writers import argilla_record, classified_fields, csv_header, render

__all__ = ["SCORE_DIGITS", "write_chunk"]

SCORE_DIGITS = 6


def write_chunk(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, files: Files,
                 chunk: list[Record | Invalid], results: list[dict[str, Any]]) -> None:
    """Append a chunk's results (in the order of its valid records) and its rejects."""
    valid = [item for item in chunk if isinstance(item, Record)]
    rows = _rows(options, plan, clf, files.stats, valid, results)
    text = ""
    if plan.output_format in ("csv", "tsv") and rows:
        if files.columns is None:
            files.columns = list(rows[0])
            text = csv_header(files.columns, plan.output_format)
        for row in rows:
            _fit_columns(row, files.columns, plan.input)
    text += render(rows, plan.output_format, files.columns)
    bad = [item for item in chunk if isinstance(item, Invalid)]
    stats = files.stats
    stats.read += len(chunk)
    stats.written += len(rows)
    stats.rejected += len(bad)
    if bad and stats.first_reject is None:
        stats.first_reject = f"line {bad[0].line}: {bad[0].reason}"
    _emit(files.out, text)
    if files.rejects is not None and bad:
        files.rejects.write("".join(
            json.dumps({"line": b.line, "reason": b.reason, "raw": b.raw}, ensure_ascii=False) + "\n" for b in bad
        ))


def _rows(options: ClassifyOptions, plan: Plan, clf: ChunkClassifier, stats: Stats,
          valid: list[Record], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output rows of the valid records; every classified record is counted, written or not."""
    agent = f"zsl-onnx:{Path(str(options.model)).name}:{clf.variant}"
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
        stats.classified += 1
        stats.top_labels[labels[0]] += 1
        stats.histogram[min(int(scores[0] * BINS), BINS - 1)] += 1
        if options.only_above and options.threshold is not None and scores[0] < options.threshold:
            continue
        if plan.output_format == "argilla":
            rows.append(argilla_record(record, plan.text_fields, labels, scores, agent, options.multi_label,
                                       options.field_prefix))
        else:
            rows.append(classified_fields(record.fields, labels, scores, options.threshold, options.field_prefix))
    return rows


def _emit(out: Appender | None, text: str) -> None:
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
