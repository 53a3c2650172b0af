"""Fetching a bundle from the Hugging Face Hub: only what one variant needs, never without a timeout.

Every network call gets ``timeout`` seconds (default :data:`DEFAULT_HUB_TIMEOUT`): the repo's
file list and commit come from one ``model_info`` call, then each file is fetched by
``hf_hub_download`` pinned to that commit, with the same timeout for its metadata request
(the byte transfer itself stalls out after ``HF_HUB_DOWNLOAD_TIMEOUT``, 10 s by default).
``snapshot_download`` is used only offline, where it makes no network call at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from ._exceptions import BundleError, mapped_errors

__all__ = ["DEFAULT_HUB_TIMEOUT", "download", "fetch_matching"]

DEFAULT_HUB_TIMEOUT = 10.0

# (root, repo file names, variant, on_gpu, where) -> the files of the chosen variant
ChooseFiles = Callable[[Path, set[str] | None, str | None, bool, str], list[str]]


def download(
    repo_id: str,
    *,
    metadata: tuple[str, ...],
    choose: ChooseFiles,
    variant: str | None,
    on_gpu: bool,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    timeout: float | None = DEFAULT_HUB_TIMEOUT,
) -> Path:
    """The local snapshot directory of ``repo_id`` holding the metadata files and one variant."""
    if timeout is not None and not timeout > 0:
        raise BundleError(f"The Hub timeout must be a positive number of seconds, not {timeout!r}.")
    failed = "it is not in the Hugging Face Hub cache" if local_files_only else "fetching it from the Hugging Face Hub failed"
    # Hub errors (offline, timeout, 404, gated, auth) all need the same advice.
    with mapped_errors(
        f"{repo_id!r} is not a local directory (no such path here), and {failed}",
        "Check the path, or pass a local directory exported with zsl-export; for a Hub model, check the repo "
        "id and your connection, or use one already in the cache with local_files_only=True (--offline).",
    ):
        if local_files_only:
            return _cached(repo_id, revision, cache_dir)
        return _fetch(repo_id, metadata, choose, variant, on_gpu, revision, cache_dir, timeout)


def _cached(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))


def _fetch(
    repo_id: str, metadata: tuple[str, ...], choose: ChooseFiles, variant: str | None, on_gpu: bool,
    revision: str | None, cache_dir: str | Path | None, timeout: float | None,
) -> Path:
    from huggingface_hub import HfApi, hf_hub_download

    info = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
    files = {sibling.rfilename for sibling in info.siblings or ()}

    def get(name: str) -> Path:
        path = Path(hf_hub_download(repo_id, name, revision=info.sha, cache_dir=cache_dir, etag_timeout=timeout))
        return path.parents[len(PurePosixPath(name).parts) - 1]  # the snapshot directory

    roots = [get(name) for name in metadata if name in files]
    if not roots:
        raise BundleError(f"{repo_id!r} on the Hub has none of {list(metadata)}; it is not a model repo zsl-onnx can use.")
    for name in choose(roots[0], files, variant, on_gpu, repo_id):
        if name in files:
            get(name)
    return roots[0]



def fetch_matching(
    repo_id: str,
    patterns: Sequence[str],
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    timeout: float | None = DEFAULT_HUB_TIMEOUT,
) -> Path:
    """The snapshot directory holding the repo's files that match ``patterns`` (for the exporter).

    Raises the third-party error as is; the caller knows what advice fits.
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    if local_files_only:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(patterns),
                                      local_files_only=True))
    info = HfApi().model_info(repo_id, revision=revision, timeout=timeout)
    names = [s.rfilename for s in info.siblings or () if any(fnmatch(s.rfilename, p) for p in patterns)]
    if not names:
        raise BundleError(f"{repo_id!r} on the Hub has no files matching {list(patterns)}.")
    root = None
    for name in names:
        path = Path(hf_hub_download(repo_id, name, revision=info.sha, cache_dir=cache_dir, etag_timeout=timeout))
        root = path.parents[len(PurePosixPath(name).parts) - 1]
    assert root is not None
    return root
