"""Steps that produce the fp32 graph: export it, validate it, then make its head cheaper."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from zsl_onnx.internals import read_json, resolve_max_length

from ._errors import ExportError, ExportValidationError
from ._graph import external_files
from ._head_token import rewrite_file
from ._job import EXPORTED_FILE, FP32_FILE, ExportJob
from ._validation import VALIDATION_PAIRS, torch_logits


def export_onnx(torch_model: Any, staging: Path, task: str = "text-classification") -> None:
    """Trace ``torch_model`` with optimum-onnx into ``staging/onnx/model.onnx`` (+ external data);
    ``task`` "feature-extraction" gives a body whose output is the token vectors."""
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=staging, prefix=".optimum-") as tmp:
        onnx_export_from_model(torch_model, tmp, task=task, do_validation=False)
        (staging / "onnx").mkdir()
        for path in Path(tmp).iterdir():
            if path.name.startswith("model.onnx"):  # the graph and its external data, if any
                shutil.move(str(path), staging / "onnx" / path.name)
    if not (staging / FP32_FILE).is_file():
        raise ExportError("optimum-onnx produced no model.onnx; see its log above.")


def export_fp32(job: ExportJob) -> None:
    """Step: the ONNX graph, tokenizer files and config in the staging directory."""
    job.stage("export", "tracing the PyTorch model to ONNX (optimum-onnx)")
    export_onnx(job.torch_model, job.staging)
    job.tokenizer.save_pretrained(job.staging)
    job.torch_model.config.save_pretrained(job.staging)
    job.config = read_json(job.path("config.json"))
    job.max_length = resolve_max_length(read_json(job.path("tokenizer_config.json")), job.config)
    job.external_data = bool(external_files(job.path(FP32_FILE)))


def validate_fp32(job: ExportJob) -> None:
    """Step: ONNX Runtime fp32 must reproduce PyTorch's logits within ``atol``."""
    job.stage("validate", "PyTorch vs ONNX Runtime fp32 on built-in pairs")
    premises = [p for p, _ in VALIDATION_PAIRS]
    hypotheses = [h for _, h in VALIDATION_PAIRS]
    job.reference = torch_logits(
        job.torch_model, job.tokenizer, premises, hypotheses, max_length=job.max_length
    )
    job.fp32 = job.compare("fp32")
    job.say(f"      fp32: max |logit diff| {job.fp32.max_abs_diff:.2e}, "
            f"top-1 agreement {job.fp32.top1_agreement:.1%}")
    atol = job.options.atol
    if job.options.validate and job.fp32.max_abs_diff > atol:
        raise ExportValidationError(
            f"The ONNX fp32 model differs from PyTorch by up to {job.fp32.max_abs_diff:.3g} in logits "
            f"(tolerance {atol:g}) on the built-in validation pairs; the export is wrong and "
            "was not written. Report the model id; --atol raises the tolerance at your risk."
        )


def rewrite_head_token(job: ExportJob) -> None:
    """Step: run the layers after the last attention on the head's token only.

    The rewrite is exact, so a rewritten graph that fails to run or drifts past ``atol`` is
    undone. The unrewritten graph is kept (never shipped) for the int8 step's optimizer, which
    needs it to fuse the last attention.
    """
    if job.external_data:
        job.head_token = {"applied": False, "reason": "graph stored with external data (over 2 GB); not rewritten"}
        return
    try:
        moved, original = rewrite_file(job.path(FP32_FILE))
    except Exception as exc:  # onnx's checker refused the rewritten graph; the file was not touched
        job.head_token = {"applied": False, "reason": f"rewrite refused: {type(exc).__name__}: {exc}"[:300]}
        return
    if not moved:
        job.head_token = {"applied": False,
                          "reason": "no Gather of token 0 feeding the head (e.g. BART reads its last EOS token)"}
        return
    try:
        rewritten = job.compare("fp32")
        problem = (f"differed from PyTorch by {rewritten.max_abs_diff:.3g}"
                   if rewritten.max_abs_diff > job.options.atol else "")
    except Exception as exc:  # a graph ONNX Runtime cannot run, whatever the error type
        problem = f"failed to run: {type(exc).__name__}: {exc}"
    if problem:
        job.path(FP32_FILE).write_bytes(original)
        job.head_token = {"applied": False, "reason": f"rewritten graph {problem}; undone"}
        job.say(f"      head-token rewrite {job.head_token['reason']}")
        return
    job.path(EXPORTED_FILE).write_bytes(original)
    job.fp32 = rewritten
    job.head_token = {"applied": True, "nodes": moved}
    job.say(f"      head token: {moved} token-wise nodes after the last attention now run on token 0 only "
            f"(max |logit diff| {rewritten.max_abs_diff:.2e})")
