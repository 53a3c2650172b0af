"""Checking what a bundle's ``zsl_onnx.json`` and ``config.json`` say, before anything uses it.

A manifest is data from whoever made the bundle: every value the runtime relies on is checked
here (types, ranges, agreement with config.json) and a bad one is a :class:`BundleError`
naming the field, never an IndexError later or a silently wrong label. Checks are grouped by
manifest section and by model kind, so a new kind of bundle adds its own tuple of checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._exceptions import BundleError, InvalidInputError, NoEntailmentLabelError
from ._hypotheses import check_template
from ._labels import resolve_labels
from ._tokenization import model_positions
from ._pooling import PoolingConfig
from ._similarity import Scoring

__all__ = [
    "EMBEDDING_MANIFEST_VERSION",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "VARIANTS",
    "check_config",
    "check_manifest",
]

MANIFEST_FORMAT = "zsl-onnx-bundle"
MANIFEST_VERSION = 1
# Embedding bundles say 2, so that a zsl-onnx without embedding support refuses them with
# "upgrade" instead of failing on the missing logits output; 3 adds a variant's
# ``label_variant`` (which file encodes label hypotheses), which a reader of 2 would ignore.
EMBEDDING_MANIFEST_VERSION = 3
VARIANTS = ("fp32", "int8", "fp16")
_SHA256 = re.compile(r"[0-9a-f]{64}")

Check = Callable[[Mapping[str, Any], Mapping[str, Any]], None]


def check_manifest(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Raise a BundleError for the first value the runtime could not rely on."""
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("variants"), dict):
        _bad("it is not a zsl-onnx manifest (format or variants missing)")
    version = manifest.get("format_version")
    newest = EMBEDDING_MANIFEST_VERSION if manifest.get("kind") == "embedding" else MANIFEST_VERSION
    if not _is_int(version) or version < 1 or version > newest:
        raise BundleError(
            f"zsl_onnx.json has format_version {version!r}; this zsl-onnx reads 1 to "
            f"{newest}. Upgrade zsl-onnx."
        )
    kind = manifest.get("kind", "nli")
    if kind not in CHECKS_BY_KIND:
        raise BundleError(f"zsl_onnx.json is for a {kind!r} model, which this zsl-onnx cannot run. Upgrade zsl-onnx.")
    for check in CHECKS_BY_KIND[kind]:
        check(manifest, config)


def check_config(config: Mapping[str, Any]) -> None:
    """config.json's label maps must be well formed before labels are resolved from them."""
    id2label = config.get("id2label")
    if id2label is not None:
        if not isinstance(id2label, dict) or not all(
            isinstance(k, str) and k.lstrip("-").isdigit() and isinstance(v, str) for k, v in id2label.items()
        ):
            raise BundleError("config.json's id2label must map class numbers to label names; the bundle is corrupt.")
        ids = sorted(int(k) for k in id2label)
        if ids != list(range(len(ids))):
            raise BundleError(f"config.json's id2label numbers {ids} are not 0..{len(ids) - 1}; the bundle is corrupt.")
    label2id = config.get("label2id")
    if label2id is not None:
        if not isinstance(label2id, dict) or not all(isinstance(k, str) and _is_int(v) for k, v in label2id.items()):
            raise BundleError("config.json's label2id must map label names to class numbers; the bundle is corrupt.")
        size = len(id2label) if isinstance(id2label, dict) and id2label else len(label2id)
        if any(not 0 <= v < size for v in label2id.values()):
            raise BundleError("config.json's label2id has class numbers outside its labels; the bundle is corrupt.")


def _check_labels(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    labels = manifest.get("labels")
    if labels is None:
        return  # the runtime then resolves labels from config.json
    if not isinstance(labels, dict):
        _bad("labels must be an object")
    names = labels.get("names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        _bad("labels.names must list at least two class names")
    if len(set(names)) != len(names):
        _bad(f"labels.names {names} repeats a name")
    entail, contra = labels.get("entailment_index"), labels.get("contradiction_index")
    for field, value in (("entailment_index", entail), ("contradiction_index", contra)):
        if not _is_int(value) or not 0 <= value < len(names):
            _bad(f"labels.{field} is {value!r}, not a class number from 0 to {len(names) - 1}")
    if entail == contra:
        _bad("labels.entailment_index and contradiction_index are the same class")
    try:
        expected = resolve_labels(config).to_json()
    except NoEntailmentLabelError:
        expected = None
    if expected != {"names": names, "entailment_index": entail, "contradiction_index": contra}:
        _bad(
            f"labels {names} (entailment {entail}, contradiction {contra}) disagree with config.json "
            f"({expected}); one of the two files was edited"
        )


def _check_max_length(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    value = manifest.get("max_length")
    if value is None:
        return
    positions = model_positions(config)
    if not _is_int(value) or value < 8 or (positions is not None and value > positions):
        limit = f"the model's {positions} positions" if positions is not None else "a positive token count"
        _bad(f"max_length is {value!r}, beyond {limit}")


def _check_template(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    template = manifest.get("hypothesis_template")
    if template is None:
        return
    try:
        check_template(template)
    except InvalidInputError as exc:
        _bad(f"hypothesis_template: {exc}")


def _check_variants(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    for name, entry in manifest["variants"].items():
        if name not in VARIANTS:
            _bad(f"variant {name!r} is none of {VARIANTS}")
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            _bad(f"variant {name!r} must be an object with a 'file' path")
        _check_digest(entry, f"variant {name!r}")
        external = entry.get("external_data", [])
        if not isinstance(external, list) or not all(isinstance(p, str) for p in external):
            _bad(f"variant {name!r}: external_data must be a list of paths")
        if not isinstance(entry.get("fidelity", {}), dict):
            _bad(f"variant {name!r}: fidelity must be an object")


def _check_files(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        _bad("files must map paths to their size and sha256")
    for relative, entry in files.items():
        if not isinstance(entry, dict) or entry.get("size") is None or entry.get("sha256") is None:
            _bad(f"files[{relative!r}] needs a size and a sha256")
        _check_digest(entry, f"files[{relative!r}]")


def _check_digest(entry: Mapping[str, Any], where: str) -> None:
    size, digest = entry.get("size"), entry.get("sha256")
    if size is not None and (not _is_int(size) or size < 0):
        _bad(f"{where}: size {size!r} is not a byte count")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
        _bad(f"{where}: sha256 {digest!r} is not 64 lowercase hex digits")


def _check_embedding(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Pooling, prompts and score calibration of an embedding bundle (parsed as the runtime will)."""
    entry = manifest.get("embedding")
    if not isinstance(entry, dict):
        _bad("kind 'embedding' needs an 'embedding' object")
    try:
        PoolingConfig.from_json(entry.get("pooling"))
        Scoring.from_json(entry.get("scoring", {}))
    except BundleError as exc:
        _bad(str(exc).rstrip("."))
    prompts = entry.get("prompts", {})
    if not isinstance(prompts, dict) or not all(isinstance(prompts.get(k, ""), str) for k in ("text", "label")):
        _bad("embedding.prompts must map 'text' and 'label' to strings")
    _check_label_variants(manifest["variants"])


def _check_label_variants(variants: Mapping[str, Any]) -> None:
    """A variant may have its label hypotheses encoded by another variant of the bundle, one
    that encodes its own."""
    for name, entry in variants.items():
        other = entry.get("label_variant")
        if other is None:
            continue
        if not isinstance(other, str) or other == name or other not in variants:
            _bad(f"variant {name!r}: label_variant {other!r} must name another variant of this bundle")
        if variants[other].get("label_variant") is not None:
            _bad(f"variant {name!r}: label_variant {other!r} has a label_variant of its own")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(problem: str) -> Any:
    raise BundleError(f"zsl_onnx.json is invalid: {problem}. Re-download or re-export the bundle.")


CHECKS_BY_KIND: dict[str, tuple[Check, ...]] = {
    "nli": (_check_labels, _check_max_length, _check_template, _check_variants, _check_files),
    "embedding": (_check_max_length, _check_template, _check_variants, _check_files, _check_embedding),
}
