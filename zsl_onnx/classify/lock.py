"""One writer per output file, the way git guards its index with ``index.lock``.

``FILE.zsl-lock`` is created with O_CREAT|O_EXCL (by linking a private file into place, so it
never appears half-written) and holds the writer's pid. While the writer runs it also holds
an advisory ``flock`` on it: the kernel drops that lock when the process dies, however it
dies, so a lock whose flock can be taken is stale and is removed. Where ``fcntl`` does not
exist (Windows), a left-over lock is reported and its removal left to the user.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from zsl_onnx import ZslOnnxError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_SUFFIX", "FileLock", "OutputBusyError", "lock_is_stale"]

LOCK_SUFFIX = ".zsl-lock"


class OutputBusyError(ZslOnnxError):
    """Another running process writes the same output file."""


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
        private = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(private, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:  # name what the user asked for, not our lock file
            raise OSError(exc.errno, exc.strerror, str(self.target)) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
            try:
                os.link(private, self.path)  # atomic, fails if the name exists: O_EXCL for a full file
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        return fd

    def _holder(self) -> str | None:
        """Who holds the existing lock; None after removing it because its holder is gone."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None  # released meanwhile
        try:
            text = os.read(fd, 200).decode("utf-8", errors="replace").strip() or "pid unknown"
            if not _holder_gone(fd, text):
                return text
            if _same_inode(self.path, fd):  # still the file we judged; we hold its flock
                self.path.unlink()
            return None
        finally:
            os.close(fd)


def lock_is_stale(path: Path) -> bool:
    """True when the lock file at ``path`` exists and its holder is gone (so it may be removed)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        return _holder_gone(fd, "")
    finally:
        os.close(fd)


def _holder_gone(fd: int, text: str) -> bool:
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
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
