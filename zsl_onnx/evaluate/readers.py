"""Rows of a predictions or export file, one at a time: JSONL, a JSON array, CSV or TSV.

Every reader streams (a JSON array is decoded element by element), so memory does not grow
with the file. Each row comes with where it is (``line 7``, ``record 7``) for error messages,
which name the file, the place and the problem but never echo the file's contents.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import EvaluationError

__all__ = ["Row", "iter_rows", "parse_json"]

Row = tuple[str, dict[str, Any]]  # (where, the record)
_CHUNK = 1 << 20
MAX_RECORD_CHARS = 64 << 20  # one record of an array; bounds the buffer when the JSON is bad
_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


# One decoder for every record. NaN and Infinity are refused here; 1e999 (which floats read as
# infinity) is left to the checks of the fields that matter: a score must lie in [0, 1].
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json(text: str) -> Any:
    """JSON without NaN or Infinity (a score of NaN would poison every count downstream)."""
    return _DECODER.decode(text)


def iter_rows(path: Path, role: str) -> Iterator[Row]:
    """The records of ``path``: CSV/TSV by extension, else a JSON array or JSONL by its first byte."""
    stream = _open(path, role)
    with stream:
        try:
            delimiter = _DELIMITERS.get(path.suffix.lower())
            if delimiter is not None:
                yield from _csv_rows(stream, path, delimiter)
                return
            first = _first_significant(stream)
            if first is None:
                raise EvaluationError(f"{role} {path} is empty")
            if first == "[":
                yield from _array_rows(stream, path)
            elif first == "{":
                yield from _jsonl_rows(stream, path)
            else:
                raise EvaluationError(f"{role} {path} is neither JSONL, a JSON array, CSV nor TSV")
        except UnicodeDecodeError:
            raise EvaluationError(f"{role} {path} is not UTF-8 text") from None
        except OSError as exc:
            raise EvaluationError(f"cannot read {role} {path}: {exc.strerror or exc}") from None


def _open(path: Path, role: str) -> IO[str]:
    try:
        if path.is_dir():
            raise EvaluationError(f"{role} {path} is a directory, not a file")
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EvaluationError(f"cannot read {role} {path}: {exc.strerror or exc}") from None


def _first_significant(stream: IO[str]) -> str | None:
    """The first non-space character, leaving the stream at the start of the file."""
    while True:
        chunk = stream.read(4096)
        if not chunk:
            return None
        stripped = chunk.lstrip()
        if stripped:
            stream.seek(0)
            return stripped[0]


def _jsonl_rows(stream: IO[str], path: Path) -> Iterator[Row]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = parse_json(line)
        except ValueError as exc:
            raise EvaluationError(f"{path}:{number}: invalid JSON ({_reason(exc)})") from None
        yield where, _object(value, path, where)


def _array_rows(stream: IO[str], path: Path) -> Iterator[Row]:
    """Elements of a top-level JSON array, decoded one at a time from a sliding buffer."""
    decoder = _DECODER
    buffer, pos, eof, number = stream.read(_CHUNK).lstrip(), 1, False, 0
    expect_value = True  # after '[' or ','
    while True:
        buffer, pos, eof = _fill(stream, buffer, pos, eof)
        if pos >= len(buffer):
            raise EvaluationError(f"{path}: invalid JSON (the array is not closed)")
        char = buffer[pos]
        if char == "]" and (number == 0 or not expect_value):
            if buffer[pos + 1:].strip() or stream.read(1).strip():
                raise EvaluationError(f"{path}: invalid JSON (data after the array)")
            return
        if not expect_value:
            if char != ",":
                raise EvaluationError(f"{path}: invalid JSON (expected ',' or ']' after record {number})")
            pos, expect_value = pos + 1, True
            continue
        number += 1
        value, pos, buffer, eof = _decode_element(decoder, stream, buffer, pos, eof, path, number)
        expect_value = False
        yield f"record {number}", _object(value, path, f"record {number}")


def _fill(stream: IO[str], buffer: str, pos: int, eof: bool) -> tuple[str, int, bool]:
    """Skip whitespace; read more when the buffer runs dry. Drops what has been consumed."""
    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n":
            pos += 1
        if pos < len(buffer) or eof:
            return buffer, pos, eof
        more = stream.read(_CHUNK)
        buffer, pos, eof = more, 0, not more


def _decode_element(
    decoder: json.JSONDecoder, stream: IO[str], buffer: str, pos: int, eof: bool, path: Path, number: int
) -> tuple[Any, int, str, bool]:
    """One element; an object cut by the buffer's end is retried with more text."""
    while True:
        try:
            value, end = decoder.raw_decode(buffer, pos)
            if isinstance(value, (dict, list, str)) or end < len(buffer) or eof:
                return value, end, buffer, eof
        except json.JSONDecodeError as exc:
            if eof:
                raise EvaluationError(f"{path}: record {number}: invalid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise EvaluationError(f"{path}: record {number}: invalid JSON ({_reason(exc)})") from None
        if len(buffer) - pos > MAX_RECORD_CHARS:
            raise EvaluationError(f"{path}: record {number}: invalid JSON, or a record over {MAX_RECORD_CHARS >> 20} MiB")
        more = stream.read(_CHUNK)
        buffer, pos, eof = buffer[pos:] + more, 0, not more


def _csv_rows(stream: IO[str], path: Path, delimiter: str) -> Iterator[Row]:
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise EvaluationError(f"{path} is empty")
        if len(set(header)) != len(header):
            raise EvaluationError(f"{path}: the header names a column twice")
        for cells in reader:
            if not any(cells):
                continue
            if len(cells) != len(header):
                raise EvaluationError(f"{path}:{reader.line_num}: {len(cells)} cells under {len(header)} columns")
            yield f"line {reader.line_num}", dict(zip(header, cells))
    except csv.Error as exc:
        raise EvaluationError(f"{path}:{reader.line_num}: invalid CSV ({exc})") from None


def _object(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvaluationError(f"{path}: {where} is a JSON {type(value).__name__}, not an object")
    return value


def _reason(exc: ValueError) -> str:
    """The decoder's reason with its position, never the offending text."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc).split(":")[0][:120]
