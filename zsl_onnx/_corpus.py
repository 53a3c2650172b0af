"""Streaming record readers and writers for ``zsl-classify`` (JSONL, CSV, TSV, plain text).

Readers yield one item per input record, valid or not, with its line number, so the caller
decides whether a bad record stops the run or goes to the rejects file. Input is read as
bytes and decoded line by line: invalid UTF-8 is reported with its line number instead of
failing somewhere inside the csv or json module.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

FORMATS = ("jsonl", "csv", "tsv", "txt", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt",
               ".parquet": "parquet"}


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line where the record starts
    fields: dict[str, Any]
    text: str


@dataclass(frozen=True)
class Invalid:
    line: int
    reason: str
    raw: str


class _BadBytes(Exception):
    def __init__(self, line: int, raw: bytes) -> None:
        super().__init__(line)
        self.line = line
        self.raw = raw


def format_from_name(name: str) -> str | None:
    for extension, fmt in _EXTENSIONS.items():
        if name.lower().endswith(extension):
            return fmt
    return None


def read_records(
    stream: IO[bytes], fmt: str, text_fields: Sequence[str], *, separator: str = "\n"
) -> Iterator[Record | Invalid]:
    """Yield records of ``stream`` in order; several text fields are joined with ``separator``."""
    if fmt == "jsonl":
        yield from _jsonl(stream, text_fields, separator)
    elif fmt in ("csv", "tsv"):
        yield from _delimited(stream, "," if fmt == "csv" else "\t", text_fields, separator)
    elif fmt == "txt":
        yield from _plain(stream, text_fields[0])
    elif fmt == "parquet":
        from ._parquet import read_parquet  # imports pyarrow, an optional dependency

        yield from read_parquet(stream, text_fields, separator)
    else:
        raise ValueError(f"unknown input format {fmt!r}")


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str | _BadBytes]]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark, as Excel writes
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, _BadBytes(number, raw)


def _invalid_utf8(bad: _BadBytes) -> Invalid:
    return Invalid(bad.line, "invalid UTF-8", bad.raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def _jsonl(stream: IO[bytes], text_fields: Sequence[str], separator: str) -> Iterator[Record | Invalid]:
    for number, line in _lines(stream):
        if isinstance(line, _BadBytes):
            yield _invalid_utf8(line)
            continue
        if not line.strip():
            continue
        raw = line.rstrip("\r\n")
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Invalid(number, f"malformed JSON: {exc.msg} (column {exc.colno})", raw)
            continue
        if not isinstance(value, dict):
            yield Invalid(number, f"expected a JSON object, got {type(value).__name__}", raw)
            continue
        yield _record(number, value, text_fields, separator, raw)


def _delimited(
    stream: IO[bytes], delimiter: str, text_fields: Sequence[str], separator: str
) -> Iterator[Record | Invalid]:
    decoded = _DecodedLines(_lines(stream))
    reader = csv.reader(decoded, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except _BadBytes as bad:
        yield _invalid_utf8(bad)
        return
    while True:
        start = decoded.line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except _BadBytes as bad:  # csv.reader keeps reading from its source after this
            yield _invalid_utf8(bad)
            continue
        except csv.Error as exc:
            yield Invalid(start, f"malformed {'CSV' if delimiter == ',' else 'TSV'} row: {exc}", decoded.last)
            continue
        if not row:
            continue
        raw = delimiter.join(row)
        if len(row) != len(header):
            yield Invalid(start, f"row has {len(row)} fields, the header has {len(header)}", raw)
            continue
        yield _record(start, dict(zip(header, row)), text_fields, separator, raw)


class _DecodedLines:
    """Feeds decoded lines to csv.reader and remembers where it is, for line numbers."""

    def __init__(self, lines: Iterator[tuple[int, str | _BadBytes]]) -> None:
        self._lines = lines
        self.line = 0
        self.last = ""

    def __iter__(self) -> _DecodedLines:
        return self

    def __next__(self) -> str:
        number, line = next(self._lines)
        self.line = number
        if isinstance(line, _BadBytes):
            raise line
        self.last = line.rstrip("\r\n")
        return line


def _plain(stream: IO[bytes], name: str) -> Iterator[Record | Invalid]:
    for number, line in _lines(stream):
        if isinstance(line, _BadBytes):
            yield _invalid_utf8(line)
            continue
        text = line.rstrip("\r\n")
        if not text.strip():
            continue  # blank lines separate nothing in a one-record-a-line file
        yield Record(number, {name: text}, text)


def _record(
    number: int, fields: dict[str, Any], text_fields: Sequence[str], separator: str, raw: str
) -> Record | Invalid:
    parts = []
    for name in text_fields:
        if name not in fields:
            return Invalid(number, f"missing text field {name!r} (fields: {', '.join(map(str, fields)) or 'none'})", raw)
        value = fields[name]
        if not isinstance(value, str):
            return Invalid(number, f"text field {name!r} is {type(value).__name__}, not a string", raw)
        if value.strip():
            parts.append(value)
    if not parts:
        return Invalid(number, f"empty text in {' + '.join(map(repr, text_fields))}", raw)
    return Record(number, fields, separator.join(parts))


# -- writers --------------------------------------------------------------------------------


def classified_fields(fields: dict[str, Any], labels: Sequence[str], scores: Sequence[float], threshold: float | None) -> dict[str, Any]:
    """The input fields plus the ranked labels and scores, the top label and its score.

    Scores are rounded first, so ``above_threshold`` always agrees with the ``top_score`` written.
    """
    rounded = [round(float(s), 6) for s in scores]
    out = dict(fields)
    out["labels"] = list(labels)
    out["scores"] = rounded
    out["top_label"] = labels[0]
    out["top_score"] = rounded[0]
    if threshold is not None:
        out["above_threshold"] = rounded[0] >= threshold
    return out


def argilla_record(
    record: Record, text_fields: Sequence[str], labels: Sequence[str], scores: Sequence[float], agent: str, multi_label: bool
) -> dict[str, Any]:
    """Shaped like an Argilla text-classification record: text, prediction, metadata."""
    metadata = {key: value for key, value in record.fields.items() if key not in text_fields}
    return {
        "text": record.text,
        "prediction": [[label, round(float(score), 6)] for label, score in zip(labels, scores)],
        "prediction_agent": agent,
        "multi_label": multi_label,
        "metadata": {**metadata, "line": record.line},
    }


def render(rows: Iterable[dict[str, Any]], fmt: str, columns: list[str] | None = None) -> str:
    """Rows as JSONL or CSV text (CSV list fields are JSON-encoded in one cell)."""
    if fmt in ("jsonl", "argilla"):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        assert columns is not None
        writer.writerow([_cell(row.get(column, "")) for column in columns])
    return buffer.getvalue()


def csv_header(columns: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(columns)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
