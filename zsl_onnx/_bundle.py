"""Finding a model's files: our bundles, transformers.js / onnx-community repos, optimum dirs.

Layouts understood (first match wins):
- a zsl-onnx bundle: ``zsl_onnx.json`` manifest naming each variant's file, size and sha256;
- transformers.js / onnx-community: ``onnx/model.onnx``, ``onnx/model_quantized.onnx``,
  ``onnx/model_fp16.onnx`` beside config.json and tokenizer.json;
- optimum: ``model.onnx`` (and ``model_quantized.onnx``) at the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import BundleError, ChecksumMismatchError, InvalidInputError
from ._hub import DEFAULT_HUB_TIMEOUT
from ._hub import download as hub_download
from ._manifest import MANIFEST_FORMAT, MANIFEST_VERSION, VARIANTS, check_config, check_manifest
from ._paths import bundle_file, optional_bundle_file, read_bundle_json

__all__ = [
    "DEFAULT_HUB_TIMEOUT",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "METADATA_FILES",
    "VARIANTS",
    "Bundle",
    "VariantFile",
    "download",
    "pick_variant",
    "read_bundle",
    "read_json",
    "sha256_file",
]

MANIFEST = "zsl_onnx.json"
METADATA_FILES = (
    MANIFEST,
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# The metadata files the runtime reads; verify=True checks each one the manifest lists.
_READ_METADATA = ("config.json", "tokenizer.json", "tokenizer_config.json")
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
    label_variant: str | None = None  # embedding bundles: the variant that encodes label hypotheses

    def verify(self) -> None:
        """Compare size and sha256 with the manifest: catches truncated or swapped files."""
        check_file(self.path, self.size, self.sha256, what=f"{self.name} model file")


def check_file(path: Path, size: int | None, sha256: str | None, *, what: str) -> None:
    """A bundle file against the size and sha256 its manifest records."""
    if not path.is_file():
        raise BundleError(f"The {what} {path} is missing; re-download or re-export the bundle.")
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise ChecksumMismatchError(
            f"{path} is {actual} bytes but the manifest says {size}: the file is truncated or was "
            "replaced; re-download or re-export the bundle."
        )
    if sha256 is not None and sha256_file(path) != sha256:
        raise ChecksumMismatchError(
            f"{path} does not match the sha256 in {MANIFEST}: the file is corrupt or was "
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
    tokenizer_path: Path | None = None

    @property
    def tokenizer_file(self) -> Path:
        return self.tokenizer_path or self.root / "tokenizer.json"

    @property
    def kind(self) -> str:
        """The bundle's kind (checked with the manifest): "nli", also for bundles without the
        field, or "embedding"."""
        return str((self.manifest or {}).get("kind", "nli"))

    def choose(self, requested: str | None, *, on_gpu: bool) -> VariantFile:
        return self.variants[pick_variant(self.variants, requested, on_gpu=on_gpu, where=str(self.root))]

    def label_file(self, variant: VariantFile) -> VariantFile | None:
        """The other variant that encodes label hypotheses for ``variant`` (None: itself)."""
        return None if variant.label_variant is None else self.variants[variant.label_variant]

    def verify(self, variant: VariantFile) -> None:
        """Check every file the runtime will read for ``variant`` against the manifest."""
        label = self.label_file(variant)
        used = [variant] if label is None else [variant, label]
        manifest = self.manifest or {}
        files = manifest.get("files", {})
        external = []
        for each in used:
            each.verify()
            external += manifest.get("variants", {}).get(each.name, {}).get("external_data", [])
        for relative in (*_READ_METADATA, *external):
            if relative in files:
                path = bundle_file(self.root, relative, what="file")
                check_file(path, files[relative]["size"], files[relative]["sha256"], what=relative)


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
    """A JSON object from a regular file of bounded size (config.json and the like)."""
    return read_bundle_json(Path(path), what=str(path), advice="a model directory needs it as a valid JSON object.")


def read_bundle(root: Path) -> Bundle:
    """Read a local model directory in any of the three layouts; every path checked first."""
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory.")
    config = read_bundle_json(bundle_file(root, "config.json", what="config file"), what=f"{root / 'config.json'}")
    check_config(config)
    tokenizer_config_path = optional_bundle_file(root, "tokenizer_config.json", what="tokenizer config")
    tokenizer_config = {} if tokenizer_config_path is None else read_bundle_json(
        tokenizer_config_path, what=f"{root / 'tokenizer_config.json'}"
    )
    tokenizer = optional_bundle_file(root, "tokenizer.json", what="tokenizer file")
    if tokenizer is None:
        raise BundleError(
            f"{root} has no tokenizer.json; zsl-onnx needs a fast tokenizer file. "
            "Export the model with zsl-export, which converts sentencepiece tokenizers."
        )
    manifest_path = optional_bundle_file(root, MANIFEST, what="manifest")
    if manifest_path is not None:
        manifest: dict[str, Any] | None = read_bundle_json(manifest_path, what=f"{root / MANIFEST}")
        variants = _variants_from_manifest(root, manifest, config)
    else:
        manifest = None
        variants = _variants_from_layout(root)
    if not variants:
        raise BundleError(
            f"{root} holds no ONNX model: looked for {MANIFEST}, onnx/model*.onnx and model.onnx. "
            "Export the model first: zsl-export MODEL_ID -o DIR."
        )
    return Bundle(root, config, tokenizer_config, manifest, variants, tokenizer)


def _variants_from_manifest(root: Path, manifest: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, VariantFile]:
    """Checked entries; each path must stay inside the bundle (a variant not fetched may be absent)."""
    check_manifest(manifest, config)
    for relative in manifest.get("files", {}):
        optional_bundle_file(root, relative, what="file")
    variants = {}
    for name, entry in manifest["variants"].items():
        variants[name] = VariantFile(
            name=name,
            path=_inside(root, entry["file"], f"{name} model file"),
            size=entry.get("size"),
            sha256=entry.get("sha256"),
            external_data=tuple(_inside(root, p, f"{name} external data file") for p in entry.get("external_data", [])),
            fidelity=entry.get("fidelity", {}),
            label_variant=entry.get("label_variant") if manifest.get("kind") == "embedding" else None,
        )
    return variants


def _inside(root: Path, relative: str, what: str) -> Path:
    """The checked real path, or (not there yet) the plain path under root."""
    return optional_bundle_file(root, relative, what=what) or root / relative


def _variants_from_layout(root: Path) -> dict[str, VariantFile]:
    found = _layout_files(lambda relative: optional_bundle_file(root, relative, what="model file") is not None)
    return {
        name: VariantFile(name=name, path=bundle_file(root, relative, what="model file"))
        for name, relative in found.items()
    }


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
    timeout: float | None = DEFAULT_HUB_TIMEOUT,
) -> Path:
    """Fetch only what one variant needs from the Hub: metadata first, then one ONNX file."""
    return hub_download(
        repo_id, metadata=METADATA_FILES, choose=_files_to_fetch, variant=variant, on_gpu=on_gpu,
        revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, timeout=timeout,
    )


def _files_to_fetch(root: Path, files: set[str] | None, variant: str | None, on_gpu: bool, where: str) -> list[str]:
    """The chosen variant's files: from the fetched manifest, else from the repo's file list."""
    manifest_path = optional_bundle_file(root, MANIFEST, what="manifest")
    if manifest_path is not None:
        manifest = read_bundle_json(manifest_path, what=f"{where}'s {MANIFEST}")
        config_path = optional_bundle_file(root, "config.json", what="config file")
        config = read_bundle_json(config_path, what=f"{where}'s config.json") if config_path else {}
        variants = _variants_from_manifest(root, manifest, config)
        chosen = variants[pick_variant(variants, variant, on_gpu=on_gpu, where=where)]
        label = chosen.label_variant
        entries = [manifest["variants"][name] for name in (chosen.name, label) if name is not None]
        return [name for entry in entries for name in (entry["file"], *entry.get("external_data", []))]
    found = _layout_files((files or set()).__contains__)
    if not found:
        raise BundleError(
            f"{where!r} on the Hub holds no ONNX model (looked for {MANIFEST}, onnx/model*.onnx, "
            "model.onnx). Export it yourself: zsl-export MODEL_ID -o DIR."
        )
    return _with_external_data(found[pick_variant(found, variant, on_gpu=on_gpu, where=where)])
