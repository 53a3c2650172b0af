"""Streaming record readers of ``zsl-classify``: JSONL, CSV, TSV, plain text (and Parquet, via ``parquet``).

Readers yield one item per input record, valid or not, with its line number, so the caller
decides whether a bad record stops the run or goes to the rejects file. Input is read as
bytes and decoded line by line: invalid UTF-8 is reported with its line number instead of
failing somewhere inside the csv or json module.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from zsl_onnx import InvalidInputError

from .records import Invalid, Record, make_record

__all__ = ["MAX_JSON_DEPTH", "MAX_LINE_BYTES", "byte_lines", "read_records"]

MAX_JSON_DEPTH = 64
MAX_LINE_BYTES = 128 << 20  # one record; a longer "line" is the wrong file or format (or /dev/zero)
# Byte-order marks, longest first: UTF-32 LE starts with the UTF-16 LE mark.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_EOL = re.compile(rb"\r\n|\r|\n")
_BLOCK = 1 << 16


class _BadBytes(Exception):
    def __init__(self, line: int, raw: bytes, reason: str = "invalid UTF-8") -> None:
        super().__init__(line)
        self.line = line
        self.raw = raw
        self.reason = reason


def byte_lines(stream: IO[bytes], name: str = "the input") -> Iterator[bytes]:
    """UTF-8 lines of a byte stream, each with its end (\\n, \\r\\n or a lone \\r).

    Text with a UTF-16 or UTF-32 byte-order mark is decoded and re-encoded as UTF-8, so it is
    never read as UTF-8 with NULs between the letters. Reads whatever is available, so a pipe
    that delivers records slowly is classified as they come.
    """
    read = getattr(stream, "read1", stream.read)
    head = b""
    while len(head) < 4:
        more = read(4 - len(head))
        if not more:
            break
        head += more
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    blocks: Iterator[bytes] = _chain_blocks(head, read)
    if encoding is not None:
        blocks = _transcode(blocks, encoding)
    yield from _split_lines(blocks, name)


def _chain_blocks(head: bytes, read: Any) -> Iterator[bytes]:
    if head:
        yield head
    yield from iter(lambda: read(_BLOCK), b"")


def _transcode(blocks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    # surrogatepass keeps a broken code unit visible: it fails as invalid UTF-8 on its own line.
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogatepass")
    for block in blocks:
        yield decoder.decode(block).encode("utf-8", errors="surrogatepass")
    yield decoder.decode(b"", final=True).encode("utf-8", errors="surrogatepass")


def _split_lines(blocks: Iterator[bytes], name: str = "the input") -> Iterator[bytes]:
    """Lines of a stream of blocks in linear time: each block is searched once, and the pieces of
    a line longer than a block are joined once, when its end arrives (never re-scanned or re-copied).
    A line longer than MAX_LINE_BYTES stops the read: memory stays bounded whatever the input."""
    pieces: list[bytes] = []  # the line so far
    size = number = 0  # bytes in pieces; lines yielded
    held_cr = False  # the line so far ends in \r: it ends the line unless the next block starts with \n
    for block in blocks:
        if not block:
            continue
        start = 0
        if held_cr:
            held_cr = False
            if block.startswith(b"\n"):
                pieces.append(b"\n")
                start = 1
            yield b"".join(pieces)
            pieces, size, number = [], 0, number + 1
        for match in _EOL.finditer(block, start):
            if match.end() == len(block) and match.group() == b"\r":
                held_cr = True  # maybe the first half of \r\n: wait for the next block
                break
            pieces.append(block[start : match.end()])
            yield b"".join(pieces)
            pieces, size, number = [], 0, number + 1
            start = match.end()
        if start < len(block):
            pieces.append(block[start:])
            size += len(block) - start
            if size > MAX_LINE_BYTES:
                raise InvalidInputError(
                    f"{name}: line {number + 1} is longer than {MAX_LINE_BYTES >> 20} MiB without a line end; this "
                    "is not a file of records (check the file and --input-format)."
                )
    if pieces:
        yield b"".join(pieces)


def read_records(
    stream: Iterable[bytes], fmt: str, text_fields: Sequence[str], *, separator: str = "\n"
) -> Iterator[Record | Invalid]:
    """Yield records of ``stream`` (bytes lines) in order; text fields are joined with ``separator``."""
    if fmt == "jsonl":
        yield from _jsonl(stream, text_fields, separator)
    elif fmt in ("csv", "tsv"):
        yield from _delimited(stream, "," if fmt == "csv" else "\t", text_fields, separator)
    elif fmt == "txt":
        yield from _plain(stream, text_fields[0])
    elif fmt == "parquet":
        from .parquet import read_parquet  # imports pyarrow, an optional dependency

        yield from read_parquet(stream, text_fields, separator)
    else:
        raise ValueError(f"unknown input format {fmt!r}")


def _lines(stream: Iterable[bytes]) -> Iterator[tuple[int, str | _BadBytes]]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[3:]  # a UTF-8 byte-order mark, as Excel writes
        if b"\x00" in raw:
            yield number, _BadBytes(number, raw, "NUL bytes in the line (UTF-16 without a byte-order mark?)")
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, _BadBytes(number, raw)


def _invalid_utf8(bad: _BadBytes) -> Invalid:
    raw = bad.raw.replace(b"\x00", b"").decode("utf-8", errors="replace").rstrip("\r\n")
    return Invalid(bad.line, bad.reason, raw)


def _jsonl(stream: IO[bytes], text_fields: Sequence[str], separator: str) -> Iterator[Record | Invalid]:
    for number, line in _lines(stream):
        if isinstance(line, _BadBytes):
            yield _invalid_utf8(line)
            continue
        if not line.strip():
            continue
        raw = line.rstrip("\r\n")
        try:
            value = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            yield Invalid(number, f"malformed JSON: {exc.msg} (column {exc.colno})", raw)
            continue
        except (ValueError, RecursionError) as exc:  # huge integers, NaN, 1e999, deep nesting
            yield Invalid(number, f"unusable JSON: {str(exc).split(';')[0]}", raw)
            continue
        if not isinstance(value, dict):
            yield Invalid(number, f"expected a JSON object, got {type(value).__name__}", raw)
            continue
        problem = _json_problem(value, line)
        if problem:
            yield Invalid(number, problem, raw)
            continue
        yield make_record(number, value, text_fields, separator, raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _json_problem(value: Any, line: str) -> str | None:
    """Nesting too deep to write back, or strings that cannot be written as UTF-8."""
    if "\\u" not in line and line.count("{") + line.count("[") <= MAX_JSON_DEPTH:
        return None  # the common case, told from the text: no escapes, too few brackets to nest deeply
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and not item.isascii() and not _encodable(item):
            return "a string with an unpaired surrogate escape (like \\ud800) that UTF-8 cannot hold"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    _check_header(header, "CSV" if delimiter == "," else "TSV")
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
        yield make_record(start, dict(zip(header, row)), text_fields, separator, raw)


def _check_header(header: list[str], kind: str) -> None:
    """Duplicate column names would make one column silently replace the other."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise InvalidInputError(
                f"The {kind} header names the column {name!r} twice (columns {seen[name]} and {number}); "
                "rename one so that no column is lost."
            )
        seen[name] = number


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
        yield make_record(number, {name: text}, (name,), " ", text)  # zero-width characters only: invalid
