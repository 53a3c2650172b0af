"""Step: an int8 variant, kept only if the accuracy guard finds one that agrees with fp32."""

from __future__ import annotations

from typing import Any

from ._graph import size_with_data
from ._job import FP32_FILE, INT8_FILE, ExportJob
from ._manifest import variant_entry
from .int8.nli import SPEED_PAIRS, search_int8
from .int8.search import GuardReport

__all__ = ["quantize_int8"]


def quantize_int8(job: ExportJob) -> None:
    """Step: search the int8 candidates through the guard and record the one it keeps.

    The guard quantizes the shipped fp32 graph itself (head-token rewritten, unfused): per-row
    int8 needs each weight MatMul as a node of its own, which fused attention would hide.
    """
    options = job.options
    if not options.quantize_int8:
        job.stage("quantize", "skipped (--quantize none)")
        return
    job.stage("quantize", f"int8 accuracy guard, {len(job.calibration)} calibration pairs, "
                          f"min agreement {options.min_agreement:.1%}")
    runner, reference = job.calibration_run()
    job.guard = guard = search_int8(
        job.path(FP32_FILE),
        job.path(INT8_FILE),
        runner=runner,
        calibration=job.calibration,
        reference=reference,
        fp32_size=size_with_data(job.path(FP32_FILE)),
        min_agreement=options.min_agreement,
        external_data=job.external_data,
        keep_lossy=options.keep_lossy_int8,
        candidates=options.int8_candidates,
        measure_speed=options.measure_int8_speed,
        progress=job.say,
    )
    job.say(guard.table())
    if guard.chosen is None:
        job.say(f"      no int8 candidate reached {options.min_agreement:.1%} agreement: the bundle ships "
                "fp32 only (--keep-lossy-int8 keeps the best candidate anyway)")
        return
    speedup = guard.chosen.speedup  # timed by the search when options.measure_int8_speed
    job.variants["int8"] = _int8_entry(job, guard, speedup)
    job.say(f"      int8: kept {guard.chosen.config.name!r}"
            + (" (below the threshold, as asked)" if guard.kept_lossy else "")
            + ("" if speedup is None else f"; {speedup:.2f}x fp32 speed (median of 3 interleaved passes)"))


def _int8_entry(job: ExportJob, guard: GuardReport, speedup: float | None) -> dict[str, Any]:
    assert guard.chosen is not None
    entry = variant_entry(job.staging, INT8_FILE, job.compare("int8"), validated=not guard.kept_lossy)
    entry["fidelity"].update({
        "calibration_reference": "onnx-fp32",
        "calibration_heldout_pairs": guard.context["calibration"]["heldout_pairs"],
        "calibration_agreement": round(guard.chosen.heldout_agreement, 6),
        "min_agreement": guard.min_agreement,
        "guard_passed": guard.chosen.passed,
        "batch_independent": True,
        "fp32_nodes": list(guard.chosen.config.nodes_to_exclude),
    })
    if speedup is not None:
        entry["fidelity"]["speedup_vs_fp32"] = round(speedup, 3)
        entry["fidelity"]["speed_measurement"] = (f"first {SPEED_PAIRS} calibration pairs, classifier batching, "
                                                  "median of 3 interleaved passes")
    entry["quantization"] = {**guard.chosen.config.to_json(), "guard": guard.to_json()}
    return entry
