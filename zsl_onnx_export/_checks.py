"""Refusals and clean-ups that protect the user's files around an export.

- the output may not be the source directory, inside it, or around it: replacing the output
  (``--overwrite``) would delete the model being exported;
- ``atol`` must be a finite, non-negative number (NaN would pass every comparison);
- staging directories of exports that were killed are removed, but only those that are
  provably ours: a staging directory carries a lock file beside it, held for the whole
  export, so one whose lock can be taken belongs to a process that is gone.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
from pathlib import Path

from zsl_onnx.internals import LOCK_SUFFIX, lock_is_stale

from ._errors import ExportError

__all__ = ["STAGING_INFIX", "check_atol", "check_not_nested", "remove_stale_staging"]

STAGING_INFIX = ".partial-"


def check_atol(atol: float) -> None:
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not math.isfinite(atol) or atol < 0:
        raise ExportError(f"atol must be a finite number of at least 0, like 1e-3, not {atol!r}.")


def check_not_nested(source: Path, output: Path) -> None:
    """Refuse an output that is, or is inside, or contains the source directory."""
    src, out = Path(os.path.realpath(source)), Path(os.path.realpath(output))
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        where = "is" if out == src else "is inside" if out.is_relative_to(src) else "contains"
        raise ExportError(
            f"The output {output} {where} the source model directory {source}; writing the bundle there "
            "could delete the model. Pick an output directory outside it."
        )


def remove_stale_staging(output: Path) -> list[Path]:
    """Delete staging directories of ``output`` left by killed exports; returns what was removed."""
    removed = []
    pattern = f".{glob.escape(output.name)}{STAGING_INFIX}*{glob.escape(LOCK_SUFFIX)}"
    for lock in sorted(output.parent.glob(pattern)):
        staging = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
        if staging.is_dir() and not staging.is_symlink() and lock_is_stale(lock):
            shutil.rmtree(staging)
            lock.unlink(missing_ok=True)
            removed.append(staging)
    return removed
