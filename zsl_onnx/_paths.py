"""Every path a bundle names goes through here: inside the bundle, a regular file, or refused.

Like the ``data`` filter of Python's tarfile (PEP 706): refuse absolute names and ``..``
lexically, then resolve every symlink and check that the result is still inside the bundle.
One way out is allowed, because the Hugging Face cache is built on it: a file of a snapshot
directory (``<repo>/snapshots/<commit>/``) may be a symlink into that same repo's ``blobs/``.

Refusals never say anything about the file outside (whether it exists, its size, its
content): a bundle downloaded from a stranger must not be able to probe the disk through
our error messages.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from ._exceptions import BundleError

__all__ = ["MAX_JSON_BYTES", "bundle_file", "optional_bundle_file", "read_bundle_json", "same_file"]

# config.json, tokenizer_config.json and the manifest are a few kB; tokenizer.json is not
# read through here. The cap keeps a hostile file (or /dev/zero) from eating the memory.
MAX_JSON_BYTES = 16 << 20
_CORRUPT = "the bundle is corrupt: re-download or re-export it."


def bundle_file(root: Path, relative: object, *, what: str) -> Path:
    """``root/relative`` once checked to be a regular file inside root (links resolved for the check).

    The path returned is the one under root, not its resolved target: ONNX Runtime looks for
    external data beside the path it is given, which in a Hub snapshot is the link.
    """
    path = optional_bundle_file(root, relative, what=what)
    if path is None:
        raise BundleError(
            f"{relative} is missing from {root}; a model directory needs this {what} (re-download or re-export the bundle)."
        )
    return path


def optional_bundle_file(root: Path, relative: object, *, what: str) -> Path | None:
    """Like :func:`bundle_file`, but None when nothing at all is at that name."""
    parts = _checked_parts(root, relative, what)
    candidate = Path(root, *parts)
    if not os.path.lexists(candidate):
        return None
    real = Path(os.path.realpath(candidate))
    if not _contained(Path(os.path.realpath(root)), real):
        raise BundleError(
            f"The {what} {relative!r} in {root} is a link that leaves the bundle directory; a bundle "
            "may only use files inside it. Do not use this bundle: re-download it from a source you "
            "trust or re-export it with zsl-export."
        )
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return None  # a dangling link inside the bundle: the file is missing
    if not stat.S_ISREG(mode):
        raise BundleError(
            f"The {what} {relative!r} in {root} is not a regular file; re-download or re-export the bundle."
        )
    return candidate


def _checked_parts(root: Path, relative: object, what: str) -> tuple[str, ...]:
    """Lexical checks: a relative POSIX name without '..', absolute parts, drives or NULs."""
    if not isinstance(relative, str) or not relative:
        raise BundleError(f"The {what} path in {root} must be a non-empty string, not {relative!r}.")
    bad = (
        "\\" in relative or "\x00" in relative or ":" in relative
        or PurePosixPath(relative).is_absolute()
        or ".." in PurePosixPath(relative).parts
    )
    if bad:
        raise BundleError(
            f"The {what} path {relative!r} in {root} is absolute or climbs out with '..'; a bundle may "
            "only name files inside its directory, as relative paths with '/'. Do not use this bundle."
        )
    return tuple(part for part in PurePosixPath(relative).parts if part != ".")


def _contained(real_root: Path, real: Path) -> bool:
    """Inside the root, or (Hub cache) a blob of the repo whose snapshot the root is."""
    if real.is_relative_to(real_root):
        return True
    snapshots = real_root.parent
    return (
        snapshots.name == "snapshots"
        and snapshots.parent.name.startswith(("models--", "datasets--", "spaces--"))
        and real.parent == snapshots.parent / "blobs"
    )


def read_bundle_json(
    path: Path, *, what: str | None = None, advice: str = _CORRUPT, limit: int = MAX_JSON_BYTES
) -> dict[str, Any]:
    """A JSON object from a regular file of at most ``limit`` bytes, or a BundleError.

    Opened non-blocking and checked again after opening, so a FIFO or device swapped in
    meanwhile can neither hang the loader nor feed it endless bytes.
    """
    name = what or path.name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BundleError(f"{name} is missing; {advice}") from None
    except OSError as exc:
        raise BundleError(f"Cannot open {name}: {exc.strerror}; {advice}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{name} is not a regular file; {advice}")
        raw = handle.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(raw) > limit:
        raise BundleError(f"{name} is larger than {limit >> 20} MiB; {advice}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{name} is not valid JSON ({exc}); {advice}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{name} should hold a JSON object; {advice}")
    return data


def same_file(a: Path, b: Path) -> bool:
    """The same file: one inode (hard or symbolic links), or one real path if not created yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
