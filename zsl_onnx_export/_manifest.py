"""Step: the bundle's manifest, which says what each file is and how well it was checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zsl_onnx
from zsl_onnx.internals import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, sha256_file

from ._graph import external_files
from ._job import EXPORTED_FILE, FP32_FILE, OPTIMIZED_FILE, ExportJob
from ._validation import VALIDATION_PAIRS, Comparison

__all__ = ["file_digests", "file_entry", "graph_inputs", "save_manifest", "tool_versions", "variant_entry", "write_manifest"]

TOOLS = ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


def write_manifest(job: ExportJob) -> None:
    """Step: drop the never-shipped intermediate graphs and write ``zsl_onnx.json``."""
    job.stage("write", "manifest and bundle")
    for relative in (EXPORTED_FILE, OPTIMIZED_FILE):
        for path in [job.path(relative), *external_files(job.path(relative))]:
            path.unlink(missing_ok=True)
    assert job.fp32 is not None and job.labels is not None
    fp32 = variant_entry(job.staging, FP32_FILE, job.fp32, validated=job.options.validate)
    fp32["graph_rewrites"] = {"head_token": job.head_token}
    save_manifest(
        job, {"fp32": fp32, **job.variants}, format_version=MANIFEST_VERSION, labels=job.labels.to_json(),
        validation={
            "enabled": job.options.validate,
            "atol": job.options.atol,
            "pairs": len(VALIDATION_PAIRS),
            "reference": "PyTorch fp32 logits, transformers tokenizer, only_first truncation",
        },
    )


def save_manifest(
    job: ExportJob,
    variants: dict[str, Any],
    *,
    format_version: int,
    validation: dict[str, Any],
    kind: str | None = None,
    labels: dict[str, Any] | None = None,
    embedding: dict[str, Any] | None = None,
) -> None:
    """Write ``zsl_onnx.json`` into the staging directory and keep it as ``job.manifest``: the
    one writer of every bundle kind's manifest. ``kind`` is written for kinds other than NLI
    (readers take a manifest without one for NLI); ``labels`` (NLI) and ``embedding`` (the
    pooling, prompts and scoring of an embedding bundle) where the kind has them. Every variant
    entry with a checksum has its external data listed under ``files``."""
    options = job.options
    manifest: dict[str, Any] = {"format": MANIFEST_FORMAT, "format_version": format_version}
    if kind is not None:
        manifest["kind"] = kind
    manifest["source"] = {
        "model": str(options.model),
        "requested_revision": options.revision,
        "revision": job.resolved_revision,
    }
    if labels is not None:
        manifest["labels"] = labels
    manifest.update({
        "hypothesis_template": options.template,
        "max_length": job.max_length,
        "inputs": graph_inputs(job.path(FP32_FILE)),
    })
    if embedding is not None:
        manifest["embedding"] = embedding
    manifest.update({
        "variants": variants,
        "files": file_digests(job.staging, [v for v in variants.values() if "sha256" in v]),
        "validation": validation,
        "tools": tool_versions(),
    })
    job.manifest = manifest
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    job.path(MANIFEST).write_text(text, encoding="utf-8")


def variant_entry(staging: Path, relative: str, result: Comparison, *, validated: bool) -> dict[str, Any]:
    """A variant's file, size, checksum, external data and fidelity to PyTorch's logits."""
    return file_entry(staging, relative, {"reference": "pytorch-fp32", "validated": validated, **result.to_json()})


def file_entry(staging: Path, relative: str, fidelity: dict[str, Any]) -> dict[str, Any]:
    """A variant's file, size, checksum, external data and ``fidelity``."""
    path = staging / relative
    return {
        "file": relative,
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
        "external_data": [p.relative_to(staging).as_posix() for p in external_files(path)],
        "fidelity": fidelity,
    }


def file_digests(staging: Path, variants: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every other file the runtime reads, so verify=True covers them all."""
    names = [name for name in ("config.json", "tokenizer.json", "tokenizer_config.json") if (staging / name).is_file()]
    names += [relative for entry in variants for relative in entry["external_data"]]
    return {name: {"size": (staging / name).stat().st_size, "sha256": sha256_file(staging / name)} for name in names}


def graph_inputs(model_path: Path) -> list[str]:
    """The graph's real inputs (initializers listed as inputs by old exporters excluded)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [node.name for node in graph.input if node.name not in initializers]


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"zsl-onnx": zsl_onnx.__version__}
    for name in TOOLS:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
