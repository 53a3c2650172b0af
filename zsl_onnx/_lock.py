"""One writer per output file, the way git guards its index with ``index.lock``.

``FILE.zsl-lock`` is created exclusively (by linking a private file, itself created with
O_CREAT|O_EXCL|O_NOFOLLOW under a random name, into place, so the lock never appears
half-written) and holds a signed line: ``zsl-onnx lock: pid N on HOST``. While the writer runs
it also holds an advisory ``flock`` on it: the kernel drops that lock when the process dies,
however it dies, so a lock of ours whose flock can be taken is stale and is removed.

Only a lock that is provably ours is ever removed: a regular file (never followed through a
link, never a FIFO or device, which could block or feed us endless bytes) of a few bytes in
our format. Anything else at the lock's name is refused and left alone, and no message ever
quotes its content. Where ``fcntl`` does not exist (Windows), a left-over lock is reported and
its removal left to the user.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
from pathlib import Path
from types import TracebackType

from ._exceptions import ZslOnnxError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_SUFFIX", "FileLock", "OutputBusyError", "lock_is_stale"]

LOCK_SUFFIX = ".zsl-lock"
_SIGNATURE = "zsl-onnx lock: "
_MAX_LOCK_BYTES = 512
# Ours: the signed line, or the unsigned "pid N on HOST" that earlier versions wrote.
_OURS = re.compile(rf"(?:{_SIGNATURE})?pid (\d{{1,10}}) on ([^\n]{{0,255}})\n?")
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NON_BLOCK = getattr(os, "O_NONBLOCK", 0)


class OutputBusyError(ZslOnnxError):
    """Another running process writes the same output file, or its lock name is taken by a stranger."""


class FileLock:
    """``with FileLock(path):`` holds ``path.zsl-lock`` for the duration, or refuses at once."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(target.name + LOCK_SUFFIX)
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        for _ in range(3):  # a stale lock removed by us or by a racing run: try again
            fd = self._create()
            if fd is not None:
                self._fd = fd
                return
            holder = self._holder()
            if holder is not None:
                raise OutputBusyError(
                    f"{self.target} is being written by another run ({holder}); wait for it to finish. "
                    f"If no such run exists any more, delete {self.path} and retry."
                )
        raise OutputBusyError(f"Cannot take the lock {self.path}: other runs keep taking it; retry.")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _same_inode(self.path, self._fd):
                self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None

    def _create(self) -> int | None:
        """Link a locked, filled private file to the lock name; None if the name is taken."""
        private = self.path.with_name(f"{self.path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(private, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o644)
        except OSError as exc:  # name what the user asked for, not our lock file
            raise OSError(exc.errno, exc.strerror, str(self.target)) from None
        try:
            _fill(fd)
            try:
                os.link(private, self.path, follow_symlinks=False)  # atomic, fails if the name exists
            except FileExistsError:
                os.close(fd)
                return None
            except OSError:  # a filesystem without hard links
                os.close(fd)
                return self._create_exclusive()
            return fd
        finally:
            private.unlink(missing_ok=True)

    def _create_exclusive(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o644)
        except FileExistsError:
            return None
        _fill(fd)
        return fd

    def _holder(self) -> str | None:
        """Who holds the existing lock; None after removing it because its holder is gone."""
        fd = _open_ours(self.path, self.target)
        if fd is None:
            return None  # released meanwhile
        try:
            holder = _read_holder(fd)
            if holder is None:
                raise _not_ours(self.path, self.target, "its content is not a lock's")
            if not holder:  # an empty file: a lock being created (no hard links), or not ours
                if fcntl is not None and not _holder_gone(fd):
                    return "pid unknown"
                raise _not_ours(self.path, self.target, "it is empty")
            if not _holder_gone(fd):
                return holder
            if _same_inode(self.path, fd):  # still the file we judged; we hold its flock
                self.path.unlink()
            return None
        finally:
            os.close(fd)


def lock_is_stale(path: Path) -> bool:
    """True when the file at ``path`` is a lock of ours and its holder is gone (so it may be removed)."""
    try:
        fd = _open_ours(path, path)
    except OutputBusyError:
        return False
    if fd is None:
        return False
    try:
        return bool(_read_holder(fd)) and _holder_gone(fd)
    finally:
        os.close(fd)


def _fill(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{_SIGNATURE}pid {os.getpid()} on {socket.gethostname()}\n".encode())


def _open_ours(path: Path, target: Path) -> int | None:
    """The lock file opened without following a link or blocking; None if it is gone.

    Anything but a regular file is refused (OutputBusyError) and left where it is.
    """
    try:
        fd = os.open(path, os.O_RDWR | _NO_FOLLOW | _NON_BLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise _not_ours(path, target, "it is a symbolic link") from None
        raise _not_ours(path, target, f"it cannot be opened as a file ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_ours(path, target, "it is not a regular file")
    return fd


def _read_holder(fd: int) -> str | None:
    """'pid N on HOST' from a lock of ours, '' for an empty file, None for anything else."""
    data = os.read(fd, _MAX_LOCK_BYTES + 1)
    if not data:
        return ""
    try:
        match = _OURS.fullmatch(data.decode("utf-8")) if len(data) <= _MAX_LOCK_BYTES else None
    except UnicodeDecodeError:
        match = None
    if match is None:
        return None
    return f"pid {match.group(1)} on {match.group(2)}"


def _not_ours(path: Path, target: Path, why: str) -> OutputBusyError:
    return OutputBusyError(
        f"{path} is in the way of the lock for {target}, but it is not a lock of zsl-onnx ({why}), so it "
        "is left alone. Move it away if you do not need it, or choose another output name."
    )


def _holder_gone(fd: int) -> bool:
    """The holder's flock is gone with its process; without fcntl only a person can tell."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_inode(path: Path, fd: int) -> bool:
    try:
        return os.lstat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
