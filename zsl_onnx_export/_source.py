"""Steps before any file is written: check the request, find the model's files, load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_onnx.internals import build_hypotheses, fetch_matching, read_json, resolve_labels

from .int8.calibration import CalibrationSet, builtin_calibration, load_calibration
from ._checks import check_atol
from ._errors import ExportError
from ._job import ExportJob, ExportOptions


def check_request(options: ExportOptions) -> CalibrationSet:
    """Reject a bad request before any download or model load; returns the calibration set."""
    output = options.output
    if output.exists() and not output.is_dir():
        raise ExportError(f"Output {output} exists and is a file; pick a directory path.")
    if output.is_dir() and any(output.iterdir()) and not options.overwrite:
        raise ExportError(
            f"Output directory {output} is not empty; pass --overwrite (overwrite=True) to replace it."
        )
    build_hypotheses(["label"], options.template)  # a template without {} fails here
    check_atol(options.atol)
    if not 0.0 < options.min_agreement <= 1.0:
        raise ExportError(f"min_agreement must be in (0, 1], not {options.min_agreement!r}.")
    if options.calibration_file is None:
        return builtin_calibration()
    return load_calibration(
        options.calibration_file, template=options.template, labels=options.calibration_labels
    )


def resolve_source(model: str | Path, options: ExportOptions) -> tuple[Path, str | None]:
    """A local directory as is, or a Hub snapshot of just the files an export needs."""
    revision = options.revision
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / "modules.json").is_file():
            raise ExportError(
                f"{local} has no config.json (nor modules.json); point at a transformers or "
                "sentence-transformers model directory."
            )
        return local, revision
    if local.exists() or str(model).startswith((".", "/", "~")):
        raise ExportError(f"{model} is not a model directory, and does not look like a Hub repo id.")
    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.bin"]
    if options.trust_remote_code:
        patterns.append("*.py")
    try:
        path = fetch_matching(
            str(model), patterns, revision=revision, cache_dir=options.cache_dir,
            local_files_only=options.local_files_only, timeout=options.hub_timeout,
        )
    except Exception as exc:  # offline, timeout, 404, gated: one piece of advice fits all
        raise ExportError(
            f"Cannot download {model!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "Where the hub is unreachable, pass a local transformers model directory instead "
            "(or --offline for a model already in the Hugging Face cache)."
        ) from exc
    return path, path.name  # snapshots/<commit sha>


def load_sequence_classifier(source: Path, trust_remote_code: bool) -> tuple[Any, Any]:
    """The fast tokenizer and the fp32 sequence-classification model, in eval mode."""
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


def load_nli(job: ExportJob) -> None:
    """Step: an NLI cross-encoder; its labels are checked before the weights load."""
    assert job.source is not None
    job.labels = resolve_labels(read_json(job.source / "config.json"))
    job.tokenizer, job.torch_model = load_sequence_classifier(job.source, job.options.trust_remote_code)
    job.say(
        f"      {type(job.torch_model).__name__}, labels {list(job.labels.names)}, "
        f"entailment={job.labels.entailment}, contradiction={job.labels.contradiction}"
    )
