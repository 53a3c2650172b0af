"""export_bundle(): a transformers NLI model -> a validated zsl-onnx bundle.

Steps: load -> export (optimum-onnx) -> validate fp32 against PyTorch -> int8 through the
accuracy guard -> optional fp16 -> write the manifest. The bundle is built in a staging directory next to the
output and moved into place only when every step passed, so a failed export never leaves a
half-written bundle where a user (or a running app) would load it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zsl_onnx
from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, read_json, sha256_file
from zsl_onnx.internals import DEFAULT_TEMPLATE, build_hypotheses
from zsl_onnx.internals import LabelSpec, resolve_labels
from zsl_onnx.internals import resolve_max_length

from ._calibration import CalibrationSet, builtin_calibration, load_calibration
from ._errors import ExportError, ExportValidationError
from ._graph import convert_fp16, external_files, optimize_for_int8, optimizer_type, size_with_data
from ._guard import GuardReport, PairRunner, search_int8
from ._head_token import rewrite_file
from ._quantize import BASE_CANDIDATES, QuantConfig
from ._validation import VALIDATION_PAIRS, Comparison, compare, torch_logits

Progress = Callable[[str], None]
FP32_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_quantized.onnx"
FP16_FILE = "onnx/model_fp16.onnx"
OPTIMIZED_FILE = "onnx/.model_optimized.onnx"  # int8 source; never shipped
EXPORTED_FILE = "onnx/.model_exported.onnx"  # fp32 as exported, before the head-token rewrite; never shipped


@dataclass(frozen=True)
class ExportResult:
    output: Path
    manifest: dict[str, Any]
    guard: GuardReport | None  # None when int8 was not requested


def export_bundle(
    model: str | Path,
    output: str | Path,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    template: str = DEFAULT_TEMPLATE,
    quantize_int8: bool = True,
    min_agreement: float = 0.99,
    calibration_file: str | Path | None = None,
    calibration_labels: Sequence[str] | None = None,
    keep_lossy_int8: bool = False,
    int8_candidates: Sequence[QuantConfig] = BASE_CANDIDATES,
    fp16: bool = False,
    validate: bool = True,
    atol: float = 1e-3,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``model`` (a Hub id or a local transformers directory) to a bundle in ``output``.

    Validation is on by default: fp32 logits must match PyTorch within ``atol`` on built-in
    pairs or the export fails. int8 is kept only if a candidate agrees with fp32 on at least
    ``min_agreement`` of held-out calibration pairs (``keep_lossy_int8`` keeps the best one
    anyway); fp16 (for GPUs) must agree as well. ``threads`` is for the speed measurements.
    """
    say = progress or (lambda message: None)
    output = Path(output)
    _check_output(output, overwrite)
    build_hypotheses(["label"], template)  # reject a template without {} before any work
    if not 0.0 < min_agreement <= 1.0:
        raise ExportError(f"min_agreement must be in (0, 1], not {min_agreement!r}.")
    calibration = (
        load_calibration(calibration_file, template=template, labels=calibration_labels)
        if calibration_file is not None
        else builtin_calibration()
    )

    started = time.perf_counter()
    say(f"[1/6] load: resolving {model}")
    source, resolved_revision = _resolve_source(model, revision, trust_remote_code, cache_dir)
    labels = resolve_labels(read_json(source / "config.json"))  # fail before loading weights
    tokenizer, torch_model = _load(source, trust_remote_code)
    say(
        f"      {type(torch_model).__name__}, labels {list(labels.names)}, "
        f"entailment={labels.entailment}, contradiction={labels.contradiction}"
    )

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a bundle is shared like any dir
    guard: GuardReport | None = None
    try:
        say("[2/6] export: tracing the PyTorch model to ONNX (optimum-onnx)")
        _export_onnx(torch_model, staging)
        tokenizer.save_pretrained(staging)
        torch_model.config.save_pretrained(staging)
        config = read_json(staging / "config.json")
        max_length = resolve_max_length(read_json(staging / "tokenizer_config.json"), config)
        external = bool(external_files(staging / FP32_FILE))

        premises = [p for p, _ in VALIDATION_PAIRS]
        hypotheses = [h for _, h in VALIDATION_PAIRS]
        reference = torch_logits(torch_model, tokenizer, premises, hypotheses, max_length=max_length)
        variants: dict[str, dict[str, Any]] = {}

        say("[3/6] validate: PyTorch vs ONNX Runtime fp32 on built-in pairs")
        head_token = _gather_head_token(staging / FP32_FILE, external, say)
        if head_token["applied"]:  # the rewrite is exact: if the rewritten graph fails or drifts, undo it
            try:
                fp32 = _compare(staging, "fp32", reference, premises, hypotheses)
                problem = f"differed from PyTorch by {fp32.max_abs_diff:.3g}" if fp32.max_abs_diff > atol else ""
            except Exception as exc:  # a graph ONNX Runtime cannot run, whatever the error type
                problem = f"failed to run: {type(exc).__name__}: {exc}"
            if problem:
                (staging / FP32_FILE).write_bytes(head_token.pop("original"))
                head_token = {"applied": False, "reason": f"rewritten graph {problem}; undone"}
                say(f"      head-token rewrite {head_token['reason']}")
        if not head_token["applied"]:
            fp32 = _compare(staging, "fp32", reference, premises, hypotheses)
        if "original" in head_token:  # the transformer optimizer needs the unrewritten graph to fuse the last attention
            (staging / EXPORTED_FILE).write_bytes(head_token.pop("original"))
        say(f"      fp32: max |logit diff| {fp32.max_abs_diff:.2e}, top-1 agreement {fp32.top1_agreement:.1%}")
        if validate and fp32.max_abs_diff > atol:
            raise ExportValidationError(
                f"The ONNX fp32 model differs from PyTorch by up to {fp32.max_abs_diff:.3g} in logits "
                f"(tolerance {atol:g}) on the built-in validation pairs; the export is wrong and "
                "was not written. Report the model id; --atol raises the tolerance at your risk."
            )
        variants["fp32"] = _variant_entry(staging, FP32_FILE, fp32, validated=validate)
        variants["fp32"]["graph_rewrites"] = {"head_token": head_token}

        if quantize_int8 or fp16:
            runner = PairRunner(staging, calibration, max_length=max_length, threads=threads)
            calibration_reference, fp32_pps = runner.logits(staging / FP32_FILE)
        if quantize_int8:
            say(f"[4/6] quantize: int8 accuracy guard, {len(calibration)} calibration pairs, "
                f"min agreement {min_agreement:.1%}")
            graph, graph_info = _int8_source(staging, config, runner, calibration_reference, atol, external, say)
            guard = search_int8(
                graph,
                staging / INT8_FILE,
                runner=runner,
                calibration=calibration,
                reference=calibration_reference,
                fp32_size=size_with_data(staging / FP32_FILE),
                fp32_pairs_per_s=fp32_pps,
                min_agreement=min_agreement,
                graph_info=graph_info,
                external_data=external,
                keep_lossy=keep_lossy_int8,
                candidates=int8_candidates,
                progress=say,
            )
            for path in [staging / OPTIMIZED_FILE, *external_files(staging / OPTIMIZED_FILE)]:
                path.unlink(missing_ok=True)
            say(guard.table())
            if guard.chosen is None:
                say(f"      no int8 candidate reached {min_agreement:.1%} agreement: the bundle ships "
                    "fp32 only (--keep-lossy-int8 keeps the best candidate anyway)")
            else:
                int8 = _compare(staging, "int8", reference, premises, hypotheses)
                fp32_speed, int8_speed = runner.speeds([staging / FP32_FILE, staging / INT8_FILE])
                entry = _variant_entry(staging, INT8_FILE, int8, validated=not guard.kept_lossy)
                entry["fidelity"].update(_guard_fidelity(guard))
                entry["fidelity"]["speedup_vs_fp32"] = round(int8_speed / fp32_speed, 3)
                entry["fidelity"]["speed_measurement"] = "calibration pairs, batch 32, median of 3 interleaved passes"
                entry["quantization"] = {**guard.chosen.config.to_json(), "guard": guard.to_json()}
                variants["int8"] = entry
                say(f"      int8: kept {guard.chosen.config.name!r}"
                    + (" (below the threshold, as asked)" if guard.kept_lossy else "")
                    + f"; {int8_speed / fp32_speed:.2f}x fp32 speed (median of 3 interleaved passes)")
        else:
            say("[4/6] quantize: skipped (--quantize none)")
        (staging / EXPORTED_FILE).unlink(missing_ok=True)

        if fp16:
            say("[5/6] fp16: converting for GPUs, checking against fp32 on the CPU")
            variants["fp16"] = _fp16_variant(
                staging, runner, calibration, calibration_reference, reference, premises, hypotheses,
                min_agreement, external,
            )
        else:
            say("[5/6] fp16: skipped (pass --fp16 for a GPU variant)")

        say("[6/6] write: manifest and bundle")
        manifest = _manifest(
            model, revision, resolved_revision, labels, template, max_length,
            _graph_inputs(staging / FP32_FILE), variants, validate, atol,
        )
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _move_into_place(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"done in {time.perf_counter() - started:.1f}s: {output}")
    return ExportResult(output=output, manifest=manifest, guard=guard)


def _int8_source(
    staging: Path,
    config: dict[str, Any],
    runner: PairRunner,
    reference: Any,
    atol: float,
    external: bool,
    say: Progress,
) -> tuple[Path, dict[str, Any]]:
    """The graph to quantize: transformer-fused where the optimizer supports the model and the
    fused graph still reproduces fp32, else the exported graph."""
    plain = staging / FP32_FILE
    exported = staging / EXPORTED_FILE if (staging / EXPORTED_FILE).exists() else plain
    if optimizer_type(config) is None:
        return plain, {"optimized": False, "reason": f"no graph optimizer for model_type {config.get('model_type')!r}"}
    target = staging / OPTIMIZED_FILE
    try:
        fused = optimize_for_int8(exported, target, config, external_data=external)
    except Exception as exc:  # the optimizer fails in many ways on graphs it does not expect
        say(f"      graph optimizer failed ({type(exc).__name__}: {exc}); quantizing the exported graph")
        return plain, {"optimized": False, "reason": f"optimizer failed: {type(exc).__name__}: {exc}"}
    try:
        head_token_nodes, unrewritten = rewrite_file(target) if not external else (0, b"")
    except Exception as exc:  # onnx's checker refused the rewritten graph; the file was not touched
        say(f"      head-token rewrite of the fused graph refused ({type(exc).__name__}); skipped")
        head_token_nodes, unrewritten = 0, b""
    try:
        logits, _ = runner.logits(target)
    except Exception as exc:  # the rewrite is exact, but never let it break the export
        if not head_token_nodes:
            raise
        say(f"      head-token rewrite of the fused graph failed to run ({type(exc).__name__}); undone")
        target.write_bytes(unrewritten)
        head_token_nodes = 0
        logits, _ = runner.logits(target)
    drift = float(abs(logits - reference).max())
    if drift > atol:
        say(f"      fused graph drifts by {drift:.2e} from fp32; quantizing the exported graph")
        return plain, {"optimized": False, "reason": f"fused graph differs from fp32 by {drift:.3g}"}
    say(f"      fused {fused}; max |logit diff| vs fp32 {drift:.1e}")
    return target, {"optimized": True, "fused_ops": fused, "head_token_nodes": head_token_nodes,
                    "max_abs_logit_diff_vs_fp32": drift}


def _gather_head_token(path: Path, external: bool, say: Progress) -> dict[str, Any]:
    """Compute the layers after the last attention for the head's token only (exact; see _head_token)."""
    if external:
        return {"applied": False, "reason": "graph stored with external data (over 2 GB); not rewritten"}
    try:
        moved, original = rewrite_file(path)
    except Exception as exc:  # onnx's checker refused the rewritten graph; the file was not touched
        return {"applied": False, "reason": f"rewrite refused: {type(exc).__name__}: {exc}"[:300]}
    if not moved:
        return {"applied": False, "reason": "no Gather of token 0 feeding the head (e.g. BART reads its last EOS token)"}
    say(f"      head token: {moved} token-wise nodes after the last attention now run on token 0 only")
    return {"applied": True, "nodes": moved, "original": original}


def _guard_fidelity(guard: GuardReport) -> dict[str, Any]:
    assert guard.chosen is not None
    return {
        "calibration_reference": "onnx-fp32",
        "calibration_heldout_pairs": guard.calibration["heldout_pairs"],
        "calibration_agreement": round(guard.chosen.heldout_agreement, 6),
        "min_agreement": guard.min_agreement,
        "guard_passed": guard.chosen.passed,
    }


def _fp16_variant(
    staging: Path,
    runner: PairRunner,
    calibration: CalibrationSet,
    calibration_reference: Any,
    reference: Any,
    premises: list[str],
    hypotheses: list[str],
    min_agreement: float,
    external: bool,
) -> dict[str, Any]:
    convert_fp16(staging / FP32_FILE, staging / FP16_FILE, external_data=external)
    logits, _ = runner.logits(staging / FP16_FILE)
    agree = (logits.argmax(axis=1) == calibration_reference.argmax(axis=1))[calibration.heldout].mean()
    if agree < min_agreement:
        raise ExportValidationError(
            f"The fp16 model agrees with fp32 on only {agree:.2%} of held-out calibration pairs "
            f"(need {min_agreement:.1%}); this model overflows in fp16. Export without --fp16."
        )
    entry = _variant_entry(staging, FP16_FILE, _compare(staging, "fp16", reference, premises, hypotheses), validated=True)
    entry["fidelity"].update(
        {
            "calibration_reference": "onnx-fp32",
            "calibration_heldout_pairs": len(calibration.heldout),
            "calibration_agreement": round(float(agree), 6),
            "checked_on": "CPUExecutionProvider",
        }
    )
    return entry


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ExportError(f"Output {output} exists and is a file; pick a directory path.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ExportError(
            f"Output directory {output} is not empty; pass --overwrite (overwrite=True) to replace it."
        )


def _resolve_source(
    model: str | Path, revision: str | None, trust_remote_code: bool, cache_dir: str | Path | None
) -> tuple[Path, str | None]:
    """A local directory as is, or a Hub snapshot of just the files an export needs."""
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ExportError(f"{local} has no config.json; point at a transformers model directory.")
        return local, revision
    if local.exists() or str(model).startswith((".", "/", "~")):
        raise ExportError(f"{model} is not a model directory, and does not look like a Hub repo id.")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"]
    if trust_remote_code:
        patterns.append("*.py")
    try:
        path = Path(
            snapshot_download(str(model), revision=revision, cache_dir=cache_dir, allow_patterns=patterns)
        )
    except Exception as exc:  # offline, 404, gated: one piece of advice fits all
        raise ExportError(
            f"Cannot download {model!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "Where the hub is unreachable, pass a local transformers model directory instead."
        ) from exc
    return path, path.name  # snapshots/<commit sha>


def _load(source: Path, trust_remote_code: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise ExportError(
            f"{type(tokenizer).__name__} has no fast (Rust) version, so no tokenizer.json can be "
            "written; zsl-onnx needs one. Install sentencepiece and protobuf if the model uses them."
        )
    model = AutoModelForSequenceClassification.from_pretrained(
        source, trust_remote_code=trust_remote_code, torch_dtype=torch.float32
    )
    return tokenizer, model.eval()


def _export_onnx(torch_model: Any, staging: Path) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=staging.parent, prefix=".optimum-") as tmp:
        onnx_export_from_model(torch_model, tmp, task="text-classification", do_validation=False)
        (staging / "onnx").mkdir()
        for path in Path(tmp).iterdir():
            if path.name.startswith("model.onnx"):  # the graph and its external data, if any
                shutil.move(str(path), staging / "onnx" / path.name)
    if not (staging / FP32_FILE).is_file():
        raise ExportError("optimum-onnx produced no model.onnx; see its log above.")


def _compare(
    staging: Path, variant: str, reference: Any, premises: list[str], hypotheses: list[str]
) -> Comparison:
    """Run the pairs through the real runtime (tokenizer.json, batching, session), not a shortcut."""
    classifier = ZeroShotClassifier.from_pretrained(staging, variant=variant, verify=False)
    return compare(reference, classifier.pair_logits(premises, hypotheses))


def _variant_entry(staging: Path, relative: str, result: Comparison, *, validated: bool) -> dict[str, Any]:
    path = staging / relative
    external = external_files(path)
    return {
        "file": relative,
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
        "external_data": [p.relative_to(staging).as_posix() for p in external],
        "fidelity": {"reference": "pytorch-fp32", "validated": validated, **result.to_json()},
    }


def _graph_inputs(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [node.name for node in graph.input if node.name not in initializers]


def _manifest(
    model: str | Path,
    requested_revision: str | None,
    resolved_revision: str | None,
    labels: LabelSpec,
    template: str,
    max_length: int,
    inputs: list[str],
    variants: dict[str, dict[str, Any]],
    validate: bool,
    atol: float,
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "source": {
            "model": str(model),
            "requested_revision": requested_revision,
            "revision": resolved_revision,
        },
        "labels": labels.to_json(),
        "hypothesis_template": template,
        "max_length": max_length,
        "inputs": inputs,
        "variants": variants,
        "validation": {
            "enabled": validate,
            "atol": atol,
            "pairs": len(VALIDATION_PAIRS),
            "reference": "PyTorch fp32 logits, transformers tokenizer, only_first truncation",
        },
        "tools": _tool_versions(),
    }


def _tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"zsl-onnx": zsl_onnx.__version__}
    for name in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "tokenizers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _move_into_place(staging: Path, output: Path) -> None:
    if output.exists():
        retired = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)
