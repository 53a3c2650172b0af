"""Step: an int8 variant, kept only if the accuracy guard finds one that agrees with fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._graph import external_files, optimize_for_int8, optimizer_type, size_with_data
from ._guard import GuardReport, search_int8
from ._head_token import rewrite_file
from ._job import EXPORTED_FILE, FP32_FILE, INT8_FILE, OPTIMIZED_FILE, ExportJob
from ._manifest import variant_entry


def quantize_int8(job: ExportJob) -> None:
    """Step: search the int8 candidates through the guard and record the one it keeps."""
    options = job.options
    if not options.quantize_int8:
        job.stage("quantize", "skipped (--quantize none)")
        return
    job.stage("quantize", f"int8 accuracy guard, {len(job.calibration)} calibration pairs, "
                          f"min agreement {options.min_agreement:.1%}")
    runner, reference, fp32_pairs_per_s = job.calibration_run()
    graph, graph_info = int8_source(job)
    job.guard = guard = search_int8(
        graph,
        job.path(INT8_FILE),
        runner=runner,
        calibration=job.calibration,
        reference=reference,
        fp32_size=size_with_data(job.path(FP32_FILE)),
        fp32_pairs_per_s=fp32_pairs_per_s,
        min_agreement=options.min_agreement,
        graph_info=graph_info,
        external_data=job.external_data,
        keep_lossy=options.keep_lossy_int8,
        candidates=options.int8_candidates,
        progress=job.say,
    )
    for path in [job.path(OPTIMIZED_FILE), *external_files(job.path(OPTIMIZED_FILE))]:
        path.unlink(missing_ok=True)
    job.say(guard.table())
    if guard.chosen is None:
        job.say(f"      no int8 candidate reached {options.min_agreement:.1%} agreement: the bundle ships "
                "fp32 only (--keep-lossy-int8 keeps the best candidate anyway)")
        return
    fp32_speed, int8_speed = runner.speeds([job.path(FP32_FILE), job.path(INT8_FILE)])
    job.variants["int8"] = _int8_entry(job, guard, int8_speed / fp32_speed)
    job.say(f"      int8: kept {guard.chosen.config.name!r}"
            + (" (below the threshold, as asked)" if guard.kept_lossy else "")
            + f"; {int8_speed / fp32_speed:.2f}x fp32 speed (median of 3 interleaved passes)")


def _int8_entry(job: ExportJob, guard: GuardReport, speedup: float) -> dict[str, Any]:
    assert guard.chosen is not None
    entry = variant_entry(job.staging, INT8_FILE, job.compare("int8"), validated=not guard.kept_lossy)
    entry["fidelity"].update({
        "calibration_reference": "onnx-fp32",
        "calibration_heldout_pairs": guard.calibration["heldout_pairs"],
        "calibration_agreement": round(guard.chosen.heldout_agreement, 6),
        "min_agreement": guard.min_agreement,
        "guard_passed": guard.chosen.passed,
        "speedup_vs_fp32": round(speedup, 3),
        "speed_measurement": "calibration pairs, batch 32, median of 3 interleaved passes",
    })
    entry["quantization"] = {**guard.chosen.config.to_json(), "guard": guard.to_json()}
    return entry


def int8_source(job: ExportJob) -> tuple[Path, dict[str, Any]]:
    """The graph to quantize: transformer-fused where the optimizer supports the model and the
    fused graph still reproduces fp32, else the exported graph."""
    plain = job.path(FP32_FILE)
    exported = job.path(EXPORTED_FILE) if job.path(EXPORTED_FILE).exists() else plain
    if optimizer_type(job.config) is None:
        return plain, {"optimized": False,
                       "reason": f"no graph optimizer for model_type {job.config.get('model_type')!r}"}
    target = job.path(OPTIMIZED_FILE)
    try:
        fused = optimize_for_int8(exported, target, job.config, external_data=job.external_data)
    except Exception as exc:  # the optimizer fails in many ways on graphs it does not expect
        job.say(f"      graph optimizer failed ({type(exc).__name__}: {exc}); quantizing the exported graph")
        return plain, {"optimized": False, "reason": f"optimizer failed: {type(exc).__name__}: {exc}"}
    head_token_nodes, logits = _fused_logits(job, target)
    drift = float(abs(logits - job.calibration_run()[1]).max())
    if drift > job.options.atol:
        job.say(f"      fused graph drifts by {drift:.2e} from fp32; quantizing the exported graph")
        return plain, {"optimized": False, "reason": f"fused graph differs from fp32 by {drift:.3g}"}
    job.say(f"      fused {fused}; max |logit diff| vs fp32 {drift:.1e}")
    return target, {"optimized": True, "fused_ops": fused, "head_token_nodes": head_token_nodes,
                    "max_abs_logit_diff_vs_fp32": drift}


def _fused_logits(job: ExportJob, target: Path) -> tuple[int, np.ndarray]:
    """The head-token rewrite on the fused graph (undone if the result does not run), and the
    fused graph's calibration logits."""
    nodes, unrewritten = 0, b""
    if not job.external_data:
        try:
            nodes, unrewritten = rewrite_file(target)
        except Exception as exc:  # onnx's checker refused the rewritten graph; the file was not touched
            job.say(f"      head-token rewrite of the fused graph refused ({type(exc).__name__}); skipped")
    runner, _, _ = job.calibration_run()
    try:
        return nodes, runner.logits(target)[0]
    except Exception as exc:  # the rewrite is exact, but never let it break the export
        if not nodes:
            raise
        job.say(f"      head-token rewrite of the fused graph failed to run ({type(exc).__name__}); undone")
        target.write_bytes(unrewritten)
        return 0, runner.logits(target)[0]
