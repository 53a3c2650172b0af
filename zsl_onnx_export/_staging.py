"""The bundle is built in a staging directory beside the output and moved into place only when
every step passed, so a failed export never leaves a half-written bundle where a user (or a
running app) would load it."""

from __future__ import annotations

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


def move_into_place(staging: Path, output: Path) -> None:
    """Replace ``output`` with ``staging``; an old bundle is removed only after the swap."""
    if output.exists():
        retired = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
