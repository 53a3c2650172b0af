"""What zsl-classify reads: records, the invalid ones, and the formats it knows by name.

Every reader (``readers``, ``parquet``) yields a :class:`Record` or an :class:`Invalid` per
input record and builds it with :func:`make_record`, so a missing or empty text field is
reported the same way whatever the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zsl_onnx.internals import is_blank

__all__ = ["FORMATS", "OUTPUT_FORMATS", "Invalid", "Record", "format_from_name", "make_record", "output_format_from_name"]

FORMATS = ("jsonl", "csv", "tsv", "txt", "parquet")
OUTPUT_FORMATS = ("jsonl", "csv", "tsv", "label-studio", "argilla", "argilla-v1")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt",
               ".parquet": "parquet"}


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line where the record starts
    fields: dict[str, Any]
    text: str
    labels: tuple[str, ...] | None = None  # the record's own candidate labels (--labels-field)


@dataclass(frozen=True)
class Invalid:
    line: int
    reason: str
    raw: str


def format_from_name(name: str) -> str | None:
    for extension, fmt in _EXTENSIONS.items():
        if name.lower().endswith(extension):
            return fmt
    return None


def output_format_from_name(name: str) -> str | None:
    """As :func:`format_from_name`, except that a ``.json`` output is a Label Studio task array:
    JSON Lines there would be a file Label Studio's import refuses."""
    return "label-studio" if name.lower().endswith(".json") else format_from_name(name)


def make_record(
    number: int, fields: dict[str, Any], text_fields: Sequence[str], separator: str, raw: str
) -> Record | Invalid:
    """A record whose text fields are joined with ``separator``; Invalid when one is missing or not text."""
    parts, invisible = [], False
    for name in text_fields:
        if name not in fields:
            return Invalid(number, f"missing text field {name!r} (fields: {', '.join(map(str, fields)) or 'none'})", raw)
        value = fields[name]
        if not isinstance(value, str):
            return Invalid(number, f"text field {name!r} is {type(value).__name__}, not a string", raw)
        if not is_blank(value):  # the model refuses a text of only zero-width or control characters
            parts.append(value)
        invisible = invisible or bool(value.strip())
    if not parts:
        where = " + ".join(map(repr, text_fields))
        if invisible:
            return Invalid(number, f"text in {where} is empty or only whitespace or invisible characters", raw)
        return Invalid(number, f"empty text in {where}", raw)
    return Record(number, fields, separator.join(parts))
