"""The bundle is built in a staging directory beside the output and moved into place only when
every step passed, so a failed export never leaves a half-written bundle where a user (or a
running app) would load it."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zsl_onnx.internals import FileLock

from ._checks import STAGING_INFIX, remove_stale_staging


@contextmanager
def staging_dir(output: Path) -> Iterator[Path]:
    """A fresh directory next to ``output``, removed unless it was moved into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(output)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}{STAGING_INFIX}", dir=output.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a bundle is shared like any dir
    try:
        with FileLock(staging):  # marks the directory as ours while this process lives
            yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


RETIRED_INFIX = ".old-"  # .NAME.old-PID: the bundle being replaced, during the swap only


def move_into_place(staging: Path, output: Path) -> None:
    """Replace ``output`` with ``staging``; an old bundle is removed only after the swap (an
    export killed between the two renames leaves it at .NAME.old-PID: see restore_retired)."""
    if output.exists():
        retired = output.with_name(f".{output.name}{RETIRED_INFIX}{os.getpid()}")
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)


def restore_retired(output: Path) -> list[str]:
    """Undo what an export killed during :func:`move_into_place` left: with nothing at ``output``,
    the previous bundle goes back there; beside a bundle in place, a leftover is the bundle it
    replaced and is deleted. Swaps of exports still running are left alone. Returns what was done."""
    done = []
    for retired in sorted(output.parent.glob(f".{glob.escape(output.name)}{RETIRED_INFIX}*")):
        pid = retired.name.rsplit(RETIRED_INFIX, 1)[1]
        if not pid.isdigit() or not retired.is_dir() or retired.is_symlink() or _alive(int(pid)):
            continue
        if output.exists() or output.is_symlink():
            shutil.rmtree(retired)
            done.append(f"removed {retired.name}, the bundle an interrupted --overwrite export had replaced")
        else:
            retired.rename(output)
            done.append(f"restored {output} from {retired.name}, left by an export interrupted while replacing it")
    return done


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still be swapping; True when that cannot be told."""
    if pid == os.getpid():
        return False  # ours from an earlier call in this process: that swap is over
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
