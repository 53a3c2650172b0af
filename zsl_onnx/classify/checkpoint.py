"""Checkpoints of ``zsl-classify``: what is done, and proof that nothing changed since.

After each chunk the state file records how many input records are consumed, with the
length and sha256 of the input bytes they came from, the length and sha256 of the output
and rejects files, and every setting that can change a byte of output. ``--resume`` checks
all of it before it appends anything: a changed input, a truncated or edited output or a
different setting is refused with what differs, instead of a mixed or duplicated file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from zsl_onnx import InvalidInputError, ZslOnnxError
from zsl_onnx.internals import read_bundle_json

from .safefiles import new_temp, open_regular

__all__ = [
    "Appender",
    "FileMark",
    "LineTracker",
    "Prefix",
    "ResumeError",
    "State",
    "WholeFile",
    "load_state",
    "settings_diff",
    "verify_prefix",
    "write_state",
]

STATE_FORMAT = "zsl-classify-state"
STATE_VERSION = 2
MAX_STATE_BYTES = 16 << 20  # settings, counts and up to 2 x 1 MiB of labels fit many times over
_READ = 1 << 20


class ResumeError(InvalidInputError):
    """``--resume`` cannot continue safely: what differs and how to recover is in the message."""


@dataclass(frozen=True)
class FileMark:
    """The first ``bytes`` bytes of a file and their sha256."""

    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Any) -> FileMark:
        if not (isinstance(data, dict) and _count(data.get("bytes")) and isinstance(data.get("sha256"), str)):
            raise ValueError(f"bad file mark {data!r}")
        return cls(data["bytes"], data["sha256"])


class LineTracker:
    """Passes input lines through, counting their bytes and hashing them."""

    def __init__(self, lines: Iterable[bytes], name: str = "input") -> None:
        self._lines = iter(lines)
        self.name = name  # for errors: a failing read names the file
        self.bytes = 0
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            line = next(self._lines)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.name) from None
        self.bytes += len(line)
        self._hash.update(line)
        return line

    def mark(self) -> FileMark:
        return FileMark(self.bytes, self._hash.hexdigest())


class WholeFile:
    """Stands in for LineTracker where records are not lines (Parquet): the whole file's hash."""

    def __init__(self, stream: IO[bytes]) -> None:
        digest = hashlib.sha256()
        size = 0
        if stream.seekable():  # a pipe cannot be Parquet anyway; its reader says so
            for block in iter(lambda: stream.read(_READ), b""):
                digest.update(block)
                size += len(block)
            stream.seek(0)
        self.bytes = size
        self._mark = FileMark(size, digest.hexdigest())

    def mark(self) -> FileMark:
        return self._mark


@dataclass(frozen=True)
class State:
    settings: Mapping[str, Any]
    records: int  # input records (valid or not) consumed
    input: FileMark
    output: FileMark
    rejects: FileMark | None
    columns: list[str] | None
    stats: Mapping[str, Any]


def write_state(path: Path, state: State, output: Path) -> None:
    """Replace the state file atomically: it always describes one completed checkpoint."""
    data = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "output": os.path.realpath(output),
        "settings": dict(state.settings),
        "records": state.records,
        "input": state.input.to_json(),
        "output_file": state.output.to_json(),
        "rejects_file": None if state.rejects is None else state.rejects.to_json(),
        "columns": state.columns,
        "stats": dict(state.stats),
    }
    fd, temp = new_temp(path)  # never a predictable name a planted link could redirect
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(data, ensure_ascii=False).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_state(path: Path, output: Path) -> State:
    """The state of an interrupted run on ``output``, or a ResumeError saying why not."""
    if not os.path.lexists(path):
        raise ResumeError(
            f"Nothing to resume: there is no state file {path}, so the run on {output} finished (the "
            "output is complete) or never started. Run without --resume (add --overwrite to replace the output)."
        )
    restart = f"Start again with --overwrite (the output {output} will be replaced)."
    try:
        empty = path.is_file() and path.stat().st_size == 0
        data = {} if empty else read_bundle_json(
            path, what=f"The state file {path}", advice=f"it cannot say where the run stopped. {restart}",
            limit=MAX_STATE_BYTES,
        )
    except (ZslOnnxError, OSError) as exc:
        raise ResumeError(str(exc)) from None
    if empty:
        raise ResumeError(f"The state file {path} is empty, so it cannot say where the run stopped. {restart}")
    if data.get("format") != STATE_FORMAT or data.get("version") != STATE_VERSION:
        raise ResumeError(f"{path} is not a state file of this zsl-classify. {restart}")  # never quote a stranger's file
    if data.get("output") != os.path.realpath(output):
        raise ResumeError(f"The state file {path} belongs to another output ({data.get('output')}), not {output}. {restart}")
    try:
        return _state_from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResumeError(f"The state file {path} is corrupt ({exc}). {restart}") from None


def _state_from_json(data: Mapping[str, Any]) -> State:
    if not (_count(data["records"]) and isinstance(data["settings"], dict) and isinstance(data["stats"], dict)):
        raise ValueError("records, settings or stats malformed")
    columns = data["columns"]
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise ValueError("columns malformed")
    rejects = data["rejects_file"]
    return State(
        settings=data["settings"],
        records=data["records"],
        input=FileMark.from_json(data["input"]),
        output=FileMark.from_json(data["output_file"]),
        rejects=None if rejects is None else FileMark.from_json(rejects),
        columns=columns,
        stats=data["stats"],
    )


def settings_diff(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line per setting that differs, as 'name: then X, now Y'."""
    names = list(dict.fromkeys([*before, *now]))
    return [f"{name}: {before.get(name)!r} then, {now.get(name)!r} now"
            for name in names if before.get(name) != now.get(name)]


@dataclass
class Prefix:
    """The checked first bytes of a file: their hash state (to go on appending) and the rows they end."""

    digest: Any
    rows: int
    head: bytes  # its first bytes (up to one read), for the CSV header check


def verify_prefix(path: Path, mark: FileMark, what: str, *, quoted: bool = False) -> Prefix:
    """Check that ``path`` starts with the recorded bytes; count the rows they hold.

    Rows end with a newline; with ``quoted`` (CSV, TSV) a newline inside a quoted cell does not
    count: the writer doubles every quote inside a quoted cell, so a newline ends a row exactly
    when an even number of quotes precedes it.
    """
    digest = hashlib.sha256()
    if mark.bytes == 0 and not os.path.lexists(path):
        return Prefix(digest, 0, b"")  # nothing was written before the stop; the file may not exist yet
    advice = ("It was changed after the run stopped, so appending to it would not give the bytes an "
              "uninterrupted run writes. Restore it, or start again with --overwrite.")
    rows, inside, head = 0, False, b""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY, what), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < mark.bytes:
                raise ResumeError(f"The {what} {path} has {size} bytes, fewer than the {mark.bytes} it had at the "
                                  f"last checkpoint (truncated or replaced). {advice}")
            left = mark.bytes
            while left:
                block = handle.read(min(_READ, left))
                if not block:
                    break
                head = head or block
                digest.update(block)
                left -= len(block)
                rows, inside = _count_rows(block, rows, inside, quoted)
    except OSError as exc:
        raise ResumeError(f"Cannot read the {what} {path} to check it ({exc.strerror}).") from None
    if digest.hexdigest() != mark.sha256:
        raise ResumeError(f"The first {mark.bytes} bytes of the {what} {path} differ from what the interrupted "
                          f"run wrote. {advice}")
    return Prefix(digest, rows, head)


def _count_rows(block: bytes, rows: int, inside: bool, quoted: bool) -> tuple[int, bool]:
    """Rows ended in ``block``, and whether it ends inside a quoted cell; linear in the block."""
    if not quoted:
        return rows + block.count(b"\n"), False
    for i, part in enumerate(block.split(b'"')):
        if i:
            inside = not inside
        if not inside:
            rows += part.count(b"\n")
    return rows, inside


class Appender:
    """An output file opened for appending that knows its length and sha256 (for checkpoints).

    Writing to it never touches what came before ``start``: a resumed run first cuts off
    whatever a crash left after the last checkpoint, then appends. A fresh file is created
    exclusively unless ``replace`` (--overwrite); a FIFO or device is refused, never opened.
    """

    def __init__(self, path: Path, start: FileMark | None = None, digest: Any = None, *, replace: bool = True,
                 what: str = "output") -> None:
        self.path = path
        self.bytes = 0 if start is None else start.bytes
        self._hash = digest if digest is not None else hashlib.sha256()
        existing = start is not None and os.path.lexists(path)
        if existing:
            fd = open_regular(path, os.O_RDWR, what)
        else:
            fd = open_regular(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL), what)
        self._handle: IO[bytes] = os.fdopen(fd, "r+b" if existing else "wb")
        if start is not None:
            self._handle.truncate(start.bytes)
            self._handle.seek(start.bytes)

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        try:
            self._handle.write(data)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self.bytes += len(data)
        self._hash.update(data)

    def sync(self) -> FileMark:
        """Flush to disk; the returned mark may go into a checkpoint."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        return FileMark(self.bytes, self._hash.hexdigest())

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError:  # a full disk may refuse the final flush; the last checkpoint stands
            pass


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
