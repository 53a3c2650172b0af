"""Step: an fp16 variant for GPUs, checked against fp32 on the CPU before it is kept."""

from __future__ import annotations

from ._errors import ExportValidationError
from ._graph import convert_fp16
from ._job import FP16_FILE, FP32_FILE, ExportJob
from ._manifest import variant_entry

__all__ = ["convert_to_fp16"]


def convert_to_fp16(job: ExportJob) -> None:
    """Step: fp16 must agree with fp32 on ``fp16_min_agreement`` of the held-out calibration
    pairs, or the export fails."""
    if not job.options.fp16:
        job.stage("fp16", "skipped (pass --fp16 for a GPU variant)")
        return
    job.stage("fp16", "converting for GPUs, checking against fp32 on the CPU")
    convert_fp16(job.path(FP32_FILE), job.path(FP16_FILE), external_data=job.external_data)
    runner, reference = job.calibration_run()
    logits = runner.logits(job.path(FP16_FILE))
    heldout = job.calibration.heldout
    agree = float((logits.argmax(axis=1) == reference.argmax(axis=1))[heldout].mean())
    if agree < job.options.fp16_min_agreement:
        raise ExportValidationError(
            f"The fp16 model agrees with fp32 on only {agree:.2%} of held-out calibration pairs "
            f"(need {job.options.fp16_min_agreement:.1%}); this model overflows in fp16. Export without --fp16."
        )
    entry = variant_entry(job.staging, FP16_FILE, job.compare("fp16"), validated=True)
    entry["fidelity"].update({
        "calibration_reference": "onnx-fp32",
        "calibration_heldout_pairs": len(heldout),
        "calibration_agreement": round(agree, 6),
        "checked_on": "CPUExecutionProvider",
    })
    job.variants["fp16"] = entry
