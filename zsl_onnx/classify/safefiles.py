"""How zsl-classify opens, creates and replaces the files beside its output.

The same rules for every file a run writes (output, rejects, state, report, temporary files):
an existing file is replaced only with ``--overwrite``; a temporary file is created with
O_CREAT|O_EXCL|O_NOFOLLOW under a random name, so a link planted at a predictable name can
never redirect a write; a file is opened without blocking and checked to be a regular file, so
a FIFO or a device at a path never hangs the run or feeds it endless bytes; and a read is
bounded. No message quotes the content of a file we did not write.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from zsl_onnx import InvalidInputError

__all__ = ["new_temp", "open_regular", "publish", "read_limited", "refuse_existing"]

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NON_BLOCK = getattr(os, "O_NONBLOCK", 0)


def open_regular(path: Path, flags: int, what: str, mode: int = 0o644) -> int:
    """``os.open`` that never blocks on a FIFO and refuses anything but a regular file."""
    try:
        fd = os.open(path, flags | _NON_BLOCK, mode)
    except OSError as exc:
        if exc.errno is not None and os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
            raise _not_regular(path, what) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(path, what)
    if _NON_BLOCK:
        os.set_blocking(fd, True)
    return fd


def _not_regular(path: Path, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The {what} {path} is not a regular file (a pipe, device, socket or directory); "
        "zsl-classify reads and writes only plain files there. Pick another path."
    )


def refuse_existing(path: Path, what: str) -> None:
    """Never replace a file (or a link, or anything) without --overwrite."""
    if os.path.lexists(path):
        raise InvalidInputError(f"The {what} {path} exists; pass --overwrite to replace it, or pick another name.")


def new_temp(beside: Path) -> tuple[int, Path]:
    """A new file next to ``beside``, created exclusively under a random name, never through a link."""
    for _ in range(8):
        temp = beside.with_name(f"{beside.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o644), temp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(beside)) from None
    raise OSError(f"cannot create a temporary file beside {beside}")


def publish(temp: Path, path: Path, replace: bool, what: str) -> None:
    """Move a finished temporary file to ``path``: atomically replacing it only when allowed."""
    try:
        if replace:
            os.replace(temp, path)
            return
        try:
            os.link(temp, path, follow_symlinks=False)  # fails if the name exists, even as a dangling link
        except FileExistsError:
            raise InvalidInputError(
                f"The {what} {path} appeared while the run went on; it was left alone. Pass --overwrite to "
                "replace it, or pick another name."
            ) from None
    finally:
        temp.unlink(missing_ok=True)


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of a regular file, or a one-line refusal."""
    fd = open_regular(path, os.O_RDONLY, what)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInputError(f"The {what} {path} is larger than {limit:,} bytes; that cannot be right. Pick the right file.")
    return data
