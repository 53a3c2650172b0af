"""Steps before any file is written: check the request, find the model's files, load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_onnx import NoEntailmentLabelError
from zsl_onnx.internals import build_hypotheses, fetch_matching, resolve_labels

from .int8.calibration import CalibrationSet, builtin_calibration, load_calibration
from ._checks import check_atol
from ._errors import ExportError, SourceError
from ._job import ExportJob, ExportOptions
from ._source_errors import read_source_json, source_errors

__all__ = [
    "check_model_files", "check_request", "load_nli", "load_pretrained", "load_sequence_classifier", "resolve_source",
]

_RESAVE_FIX = "Save the model again with transformers' save_pretrained(), or download it again."
_REMOTE_CODE_FIX = (
    "zsl-export runs no code from a model unless you pass --trust-remote-code (trust_remote_code=True); "
    "do that only for a source you trust."
)
_WEIGHTS_FIX = "The file is damaged or incomplete: download or save the model again."


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
    return load_pretrained(source, "AutoModelForSequenceClassification", trust_remote_code)


def load_pretrained(source: Path, auto_class: str, trust_remote_code: bool) -> tuple[Any, Any]:
    """The fast tokenizer and the fp32 model (transformers' ``auto_class``) from ``source``, in
    eval mode. The files are checked one by one first, so that a bad one is named; whatever
    transformers still raises is reported for the folder. No model code runs unless
    ``trust_remote_code`` (``--trust-remote-code``) asks for it."""
    check_model_files(source, trust_remote_code)
    import torch
    import transformers

    with source_errors(source, "transformers cannot load the tokenizer", _RESAVE_FIX):
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise ExportError(
            f"{type(tokenizer).__name__} has no fast (Rust) version, so no tokenizer.json can be "
            "written; zsl-onnx needs one. Install sentencepiece and protobuf if the model uses them."
        )
    with source_errors(source, "transformers cannot load the model from its config.json and weights", _RESAVE_FIX):
        model = getattr(transformers, auto_class).from_pretrained(
            source, trust_remote_code=trust_remote_code, torch_dtype=torch.float32
        )
    return tokenizer, model.eval()


def check_model_files(source: Path, trust_remote_code: bool) -> None:
    """Read what transformers will read (config, tokenizer files, safetensors headers), each on
    its own, so a damaged file is reported by name rather than as a failure of the folder."""
    import transformers
    from safetensors import safe_open
    from tokenizers import Tokenizer

    for child in source.iterdir():
        if child.exists() and not (child.is_file() or child.is_dir()):  # a FIFO would hang the loaders
            raise SourceError(f"{child} is not a regular file; a model folder holds only files and folders.")
    config = read_source_json(source / "config.json", _RESAVE_FIX)
    _check_architecture(source / "config.json", config, trust_remote_code, transformers.__version__)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        if (source / name).exists():
            settings = read_source_json(source / name, _RESAVE_FIX)
            if name == "tokenizer_config.json" and not trust_remote_code:
                _check_tokenizer_class(source / name, settings)
    if (source / "tokenizer.json").exists():
        with source_errors(source / "tokenizer.json", "not a tokenizer the tokenizers library can read", _RESAVE_FIX):
            Tokenizer.from_file(str(source / "tokenizer.json"))
    for weights in sorted(source.glob("*.safetensors")):
        with source_errors(weights, "cannot be read as safetensors weights", _WEIGHTS_FIX), \
                safe_open(str(weights), framework="numpy"):
            pass  # opening checks the header and that the tensors fill the file


def _check_architecture(path: Path, config: dict[str, Any], trust_remote_code: bool, version: str) -> None:
    """Refuse a config whose architecture transformers lacks: either it asks for the model's own
    Python code (``auto_map``), which runs only with ``trust_remote_code``, or it is unknown."""
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in CONFIG_MAPPING:
        return  # built into transformers: loaded without any code from the model, auto_map or not
    if "auto_map" in config:
        if trust_remote_code:
            return
        raise SourceError(
            f"{path} maps the model to its own Python code (auto_map), and transformers {version} has no built-in "
            f"class for it. {_REMOTE_CODE_FIX}"
        )
    if model_type is not None:
        raise SourceError(
            f"{path}: its model_type is not one transformers {version} knows. Upgrade transformers "
            "(pip install -U transformers), or check the file."
        )


def _check_tokenizer_class(path: Path, settings: dict[str, Any]) -> None:
    """Refuse a tokenizer config that maps to the model's own Python code (``auto_map``) for a
    class transformers does not have; without ``trust_remote_code`` it cannot load."""
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    name = settings.get("tokenizer_class")
    if "auto_map" not in settings or not isinstance(name, str):
        return
    if tokenizer_class_from_name(name) is None and tokenizer_class_from_name(f"{name}Fast") is None:
        raise SourceError(
            f"{path} maps the tokenizer to the model's own Python code (auto_map), and transformers has no "
            f"built-in class for it. {_REMOTE_CODE_FIX}"
        )


def load_nli(job: ExportJob) -> None:
    """Step: an NLI cross-encoder; its labels are checked before the weights load."""
    assert job.source is not None
    config_path = job.source / "config.json"
    config = read_source_json(config_path, _RESAVE_FIX)
    with source_errors(config_path, "holds labels (id2label, label2id) that cannot be read", _RESAVE_FIX,
                       keep=(NoEntailmentLabelError,)):
        job.labels = resolve_labels(config)
    job.tokenizer, job.torch_model = load_sequence_classifier(job.source, job.options.trust_remote_code)
    job.say(
        f"      {type(job.torch_model).__name__}, labels {list(job.labels.names)}, "
        f"entailment={job.labels.entailment}, contradiction={job.labels.contradiction}"
    )
