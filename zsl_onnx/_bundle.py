"""Finding a model's files: our bundles, transformers.js / onnx-community repos, optimum dirs.

Layouts understood (first match wins):
- a zsl-onnx bundle: ``zsl_onnx.json`` manifest naming each variant's file, size and sha256;
- transformers.js / onnx-community: ``onnx/model.onnx``, ``onnx/model_quantized.onnx``,
  ``onnx/model_fp16.onnx`` beside config.json and tokenizer.json;
- optimum: ``model.onnx`` (and ``model_quantized.onnx``) at the root.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import BundleError, ChecksumMismatchError, InvalidInputError

MANIFEST = "zsl_onnx.json"
MANIFEST_FORMAT = "zsl-onnx-bundle"
MANIFEST_VERSION = 1
VARIANTS = ("fp32", "int8", "fp16")
METADATA_FILES = (
    MANIFEST,
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# Where each variant lives in layouts without a manifest, in order of preference.
_LAYOUT_FILES: dict[str, tuple[str, ...]] = {
    "fp32": ("onnx/model.onnx", "model.onnx"),
    "int8": ("onnx/model_quantized.onnx", "onnx/model_int8.onnx", "model_quantized.onnx"),
    "fp16": ("onnx/model_fp16.onnx", "model_fp16.onnx"),
}
_EXTERNAL_DATA_SUFFIXES = ("_data", ".data")


@dataclass(frozen=True)
class VariantFile:
    """One ONNX file of a bundle, with the size and digest the manifest promises (if any)."""

    name: str
    path: Path
    size: int | None = None
    sha256: str | None = None
    external_data: tuple[Path, ...] = ()
    fidelity: Mapping[str, Any] = field(default_factory=dict)

    def verify(self) -> None:
        """Compare size and sha256 with the manifest: catches truncated or swapped files."""
        if not self.path.is_file():
            raise BundleError(
                f"The {self.name} model file {self.path} is missing; re-download or re-export the bundle."
            )
        if self.size is not None and self.path.stat().st_size != self.size:
            raise ChecksumMismatchError(
                f"{self.path} is {self.path.stat().st_size} bytes but the manifest says {self.size}: "
                "the file is truncated or was replaced; re-download or re-export the bundle."
            )
        if self.sha256 is not None and sha256_file(self.path) != self.sha256:
            raise ChecksumMismatchError(
                f"{self.path} does not match the sha256 in {MANIFEST}: the file is corrupt or was "
                "replaced; re-download or re-export the bundle (or pass verify=False to skip the check)."
            )


@dataclass(frozen=True)
class Bundle:
    """Everything read from a model directory, before any session exists."""

    root: Path
    config: Mapping[str, Any]
    tokenizer_config: Mapping[str, Any]
    manifest: Mapping[str, Any] | None
    variants: Mapping[str, VariantFile]

    @property
    def tokenizer_file(self) -> Path:
        return self.root / "tokenizer.json"

    def choose(self, requested: str | None, *, on_gpu: bool) -> VariantFile:
        return self.variants[pick_variant(self.variants, requested, on_gpu=on_gpu, where=str(self.root))]


def pick_variant(
    available: Collection[str], requested: str | None, *, on_gpu: bool, where: str
) -> str:
    """The requested variant, else int8 on CPU / fp16 on GPU when present, else fp32.

    int8 is never picked for a GPU: its MatMulInteger kernels exist only on CPU, so ORT would
    copy every layer back and forth.
    """
    if requested is not None:
        if requested not in VARIANTS:
            raise InvalidInputError(f"variant must be one of {VARIANTS}, not {requested!r}.")
        if requested not in available:
            raise BundleError(
                f"{where} has no {requested} model; it has {sorted(available)}. "
                "Pick one of those or re-export with zsl-export."
            )
        return requested
    for name in ("fp16", "fp32") if on_gpu else ("int8", "fp32"):
        if name in available:
            return name
    raise BundleError(
        f"{where} has no model usable on {'GPU' if on_gpu else 'CPU'}: it has "
        f"{sorted(available)}. Pass variant= explicitly or re-export with zsl-export."
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise BundleError(f"{path} is missing; a model directory needs it.") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is corrupt.") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} should hold a JSON object; the bundle is corrupt.")
    return data


def read_bundle(root: Path) -> Bundle:
    """Read a local model directory in any of the three layouts."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory.")
    config = read_json(root / "config.json")
    tokenizer_config = read_json(root / "tokenizer_config.json") if (root / "tokenizer_config.json").exists() else {}
    if not (root / "tokenizer.json").is_file():
        raise BundleError(
            f"{root} has no tokenizer.json; zsl-onnx needs a fast tokenizer file. "
            "Export the model with zsl-export, which converts sentencepiece tokenizers."
        )
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        variants = _variants_from_manifest(root, manifest)
    else:
        manifest = None
        variants = _variants_from_layout(root)
    if not variants:
        raise BundleError(
            f"{root} holds no ONNX model: looked for {MANIFEST}, onnx/model*.onnx and model.onnx. "
            "Export the model first: zsl-export MODEL_ID -o DIR."
        )
    return Bundle(root, config, tokenizer_config, manifest, variants)


def _variants_from_manifest(root: Path, manifest: Mapping[str, Any]) -> dict[str, VariantFile]:
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("variants"), dict):
        raise BundleError(f"{root / MANIFEST} is not a zsl-onnx manifest; the bundle is corrupt.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise BundleError(
            f"{root / MANIFEST} has format_version {version!r}; this zsl-onnx reads up to "
            f"{MANIFEST_VERSION}. Upgrade zsl-onnx."
        )
    variants = {}
    for name, entry in manifest["variants"].items():
        variants[name] = VariantFile(
            name=name,
            path=root / entry["file"],
            size=entry.get("size"),
            sha256=entry.get("sha256"),
            external_data=tuple(root / p for p in entry.get("external_data", [])),
            fidelity=entry.get("fidelity", {}),
        )
    return variants


def _variants_from_layout(root: Path) -> dict[str, VariantFile]:
    found = _layout_files(lambda relative: (root / relative).is_file())
    return {name: VariantFile(name=name, path=root / relative) for name, relative in found.items()}


def _layout_files(exists: Callable[[str], bool]) -> dict[str, str]:
    """Variant name -> the first of its conventional paths that exists."""
    found = {}
    for name, candidates in _LAYOUT_FILES.items():
        match = next((relative for relative in candidates if exists(relative)), None)
        if match is not None:
            found[name] = match
    return found


def _with_external_data(relative: str) -> list[str]:
    return [relative + suffix for suffix in ("", *_EXTERNAL_DATA_SUFFIXES)]


def download(
    repo_id: str,
    *,
    variant: str | None,
    on_gpu: bool,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
) -> Path:
    """Fetch only what one variant needs from the Hub: metadata first, then one ONNX file."""
    from huggingface_hub import snapshot_download  # deferred: it costs ~0.1 s of import time

    common = {
        "repo_id": repo_id,
        "revision": revision,
        "cache_dir": cache_dir,
        "local_files_only": local_files_only,
    }
    try:
        root = Path(snapshot_download(allow_patterns=list(METADATA_FILES), **common))
        if (root / MANIFEST).exists():
            manifest = read_json(root / MANIFEST)
            variants = _variants_from_manifest(root, manifest)
            chosen = variants[pick_variant(variants, variant, on_gpu=on_gpu, where=repo_id)]
            patterns = [p.relative_to(root).as_posix() for p in (chosen.path, *chosen.external_data)]
        else:
            files = _remote_layout_files(repo_id, revision, variant, on_gpu, local_files_only)
            patterns = [p for relative in files for p in _with_external_data(relative)]
        return Path(snapshot_download(allow_patterns=patterns, **common))
    except BundleError:
        raise
    except Exception as exc:  # hub errors: offline, 404, gated, auth; all need the same advice
        raise BundleError(
            f"Cannot fetch {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "If the hub is unreachable, pass a local directory exported with zsl-export instead."
        ) from exc


def _remote_layout_files(
    repo_id: str, revision: str | None, variant: str | None, on_gpu: bool, local_files_only: bool
) -> list[str]:
    """Pick the ONNX file of a manifest-less repo from its file list, so one file is fetched."""
    if local_files_only:
        # No listing offline: accept any conventional path; the cache holds what it holds.
        names = [variant] if variant else (["fp16", "fp32"] if on_gpu else ["int8", "fp32"])
        return [f for name in names for f in _LAYOUT_FILES[name]]
    from huggingface_hub import list_repo_files

    files = set(list_repo_files(repo_id, revision=revision))
    found = _layout_files(files.__contains__)
    if not found:
        raise BundleError(
            f"{repo_id!r} on the Hub holds no ONNX model (looked for {MANIFEST}, onnx/model*.onnx, "
            "model.onnx). Export it yourself: zsl-export MODEL_ID -o DIR."
        )
    return [found[pick_variant(found, variant, on_gpu=on_gpu, where=repo_id)]]
