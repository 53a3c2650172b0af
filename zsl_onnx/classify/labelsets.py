"""Checks on each record before it is classified: output fields it would lose, and its own labels.

``--labels-field`` gives every record its own candidate labels: a JSON list of strings, or a
comma-separated string (a CSV/TSV cell holds either). A record whose label set is missing,
empty, not text or names a label twice is a bad record like any other: it stops the run, or
goes to the rejects file with ``--skip-invalid``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from zsl_onnx import InvalidInputError
from zsl_onnx.internals import parse_labels

from .options import ClassifyOptions
from .plan import Plan
from .records import Invalid, Record
from .writers import output_fields, refuse_collisions

__all__ = ["check_records", "record_labels"]


def check_records(records: Iterable[Record | Invalid], options: ClassifyOptions, plan: Plan) -> Iterator[Record | Invalid]:
    """The records with collisions refused and, with --labels-field, each one's labels attached."""
    reserved = output_fields(plan.output_format, options.threshold, options.field_prefix, plan.text_fields)
    items = refuse_collisions(records, reserved)
    if options.truncation_field is not None:
        items = _refuse_truncation_field(items, options.truncation_field)
    return items if options.labels_field is None else _with_labels(items, options.labels_field)


def _refuse_truncation_field(items: Iterable[Record | Invalid], field: str) -> Iterator[Record | Invalid]:
    """--truncation-field is named by the user, so the advice differs from the prefixed fields'."""
    for item in items:
        if isinstance(item, Record) and field in item.fields:
            item = Invalid(item.line, f"has a field {field!r} that --truncation-field would overwrite; name "
                                      "another --truncation-field", json.dumps(item.fields, ensure_ascii=False))
        yield item


def _with_labels(items: Iterable[Record | Invalid], field: str) -> Iterator[Record | Invalid]:
    for item in items:
        if isinstance(item, Record):
            try:
                item = replace(item, labels=tuple(record_labels(item.fields, field)))
            except InvalidInputError as exc:
                item = Invalid(item.line, str(exc), json.dumps(item.fields, ensure_ascii=False))
        yield item


def record_labels(fields: dict[str, Any], field: str) -> list[str]:
    """The labels in ``fields[field]``; InvalidInputError saying what is wrong otherwise."""
    if field not in fields:
        raise InvalidInputError(f"missing labels field {field!r}")
    value = fields[field]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInputError(f"labels field {field!r} starts with '[' but is not a JSON list") from None
    if not isinstance(value, (str, list)):
        raise InvalidInputError(f"labels field {field!r} is {type(value).__name__}, not a list or a comma-separated string")
    return parse_labels(value, name=f"labels field {field!r}")
