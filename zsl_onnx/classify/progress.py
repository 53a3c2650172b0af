"""How far a run got: the progress bar while it runs, and what to do next when it stops.

:class:`Progress` follows the checkpoints, so the advice printed after Ctrl-C or a failed
write always agrees with what the state file lets ``--resume`` do.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["LOG_EVERY_S", "Progress", "interrupted", "os_error", "progress_bar"]

LOG_EVERY_S = 10.0  # progress lines when stderr is not a terminal


@dataclass
class Progress:
    """What the command needs to say on Ctrl-C: how far the last checkpoint got, if anywhere."""

    output: Path | None = None  # set once the output file is created
    saved: int | None = None  # records covered by the last checkpoint; None: none written yet
    stdout: bool = False


def interrupted(progress: Progress) -> str:
    return "interrupted; " + _next_step(progress)


def os_error(exc: OSError, progress: Progress) -> str:
    """One line: the path and the cause, then what to run once the cause is fixed."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; once that is fixed, " + _next_step(progress)


def _next_step(progress: Progress) -> str:
    """What to run next; it always agrees with what the state file lets --resume do."""
    if progress.stdout:
        return "rerun the command (output to stdout cannot be resumed)."
    if progress.output is None:
        return "rerun the command; no output was written."
    if progress.saved is None:
        return f"nothing was saved in {progress.output}: rerun the command with --overwrite."
    return (f"{progress.saved} records are saved in {progress.output}: rerun the same command with --resume "
            "to continue from there.")


def progress_bar(total: int | None, start: int, quiet: bool) -> Any:
    """A tqdm bar over input bytes on a terminal; a log line every LOG_EVERY_S otherwise."""
    if quiet:
        return None
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    size = shutil.get_terminal_size((100, 20))  # a size of 0 (some ptys) would hide the bar
    return tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc="zsl-classify",
                file=sys.stderr if tty else _LogLines(sys.stderr), mininterval=0.1 if tty else LOG_EVERY_S,
                ncols=size.columns if tty else 100, nrows=size.lines, ascii=not tty)


class _LogLines:
    """A file for tqdm that turns its carriage-return redraws into separate log lines."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self._stream.write(f"{line}\n")

    def flush(self) -> None:
        self._stream.flush()
