"""Steps that turn a sentence-transformers model into an embedding bundle.

load (read the module chain, load the transformer body) -> export the body (optimum-onnx,
feature-extraction: token vectors out) -> validate fp32 sentence vectors against the PyTorch
reference -> fit the score calibration -> int8 through the ranking guard (``int8.embedding``)
-> write the manifest (``_manifest.save_manifest``). Each step is a function of the shared
``ExportJob`` (see ``_api``); what is particular to embeddings travels in ``job.embedding``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zsl_onnx.internals import (
    EMBEDDING_MANIFEST_VERSION,
    Scoring,
    build_hypotheses,
    load_embedding_scorer,
    read_bundle,
    read_json,
    resolve_max_length,
)

from ._embedding_calibration import GUARD_LABEL_SETS, builtin_labelled, fit_bias
from ._errors import ExportError, ExportValidationError
from ._fp32 import export_onnx
from ._graph import external_files
from ._job import FP32_FILE, INT8_FILE, EmbeddingState, ExportJob, Step
from ._manifest import file_entry, save_manifest
from ._source import load_pretrained
from ._st_reference import torch_embeddings
from ._st_source import SentenceTransformerModel, read_sentence_transformers
from ._validation import VALIDATION_PAIRS
from .int8.embedding import guard_int8

__all__ = [
    "EMBEDDING_STAGES",
    "EMBEDDING_STEPS",
    "MIN_COSINE",
    "VALIDATION_TEXTS",
    "load_sentence_transformer",
]

MIN_COSINE = 1.0 - 1e-5  # fp32 vectors vs PyTorch: the export fails below this
# Texts of every length, language and script, plus one far past any max_length (truncation).
VALIDATION_TEXTS: tuple[str, ...] = tuple(dict.fromkeys(t for pair in VALIDATION_PAIRS for t in pair))
# The progress headings, in order: as many as the NLI pipeline's (see _api.Pipeline).
EMBEDDING_STAGES = ("load", "export", "validate", "calibrate", "quantize", "write")


def load_sentence_transformer(job: ExportJob) -> None:
    """Step: read modules.json and the module configs, then load the transformer body."""
    assert job.source is not None
    unsupported = [flag for flag, asked in (("--fp16", job.options.fp16), ("--calibration-file", job.options.calibration_file))
                   if asked]
    if unsupported:
        raise ExportError(
            f"{' and '.join(unsupported)} apply to NLI bundles only; an embedding bundle is fp32 (+ int8) and "
            "calibrates on built-in labelled texts. Drop the option."
        )
    model = read_sentence_transformers(job.source)
    prompt = model.prompt(model.default_prompt())
    state = job.embedding = EmbeddingState(model, {"text": prompt, "label": prompt})
    job.say(f"      sentence-transformers: pooling {'+'.join(model.pooling.modes)}, "
            f"normalize={model.pooling.normalize}, prompts {state.prompts}")
    job.tokenizer, job.torch_model = _load_body(model, job.options.trust_remote_code)


def export_body(job: ExportJob) -> None:
    """Step: the body's ONNX graph (token vectors out), tokenizer files, config, draft manifest."""
    job.stage("export", "tracing the transformer body to ONNX (optimum-onnx, feature-extraction)")
    export_onnx(job.torch_model, job.staging, task="feature-extraction")
    job.tokenizer.save_pretrained(job.staging)
    job.torch_model.config.save_pretrained(job.staging)
    job.config = read_json(job.path("config.json"))
    limit = resolve_max_length(read_json(job.path("tokenizer_config.json")), job.config)
    job.max_length = min(_state(job).model.max_length or limit, limit)
    job.external_data = bool(external_files(job.path(FP32_FILE)))
    _write(job, {"fp32": {"file": FP32_FILE}})  # the runtime reads it in the next steps


def validate_vectors(job: ExportJob) -> None:
    """Step: fp32 sentence vectors through the real runtime vs the PyTorch reference, with each
    prompt; below ``MIN_COSINE`` the export fails."""
    job.stage("validate", "ONNX Runtime fp32 sentence vectors vs the PyTorch reference")
    state = _state(job)
    scorer = _scorer(job, FP32_FILE)
    cosines, diffs = [], []
    for prompt in dict.fromkeys(state.prompts.values()):
        reference = torch_embeddings(
            job.torch_model, job.tokenizer, VALIDATION_TEXTS, pooling=state.model.pooling, prompt=prompt,
            max_length=job.max_length,
        )
        ours = scorer.embed(list(VALIDATION_TEXTS), batch_size=8, prompt=prompt)
        norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(ours, axis=1)
        cosines.append(np.sum(reference * ours, axis=1) / np.maximum(norms, 1e-12))
        diffs.append(float(np.abs(reference - ours).max()))
    min_cosine = float(np.min(np.concatenate(cosines)))
    state.fidelity = {"reference": "pytorch-fp32", "validated": job.options.validate,
                      "min_cosine": round(min_cosine, 9), "max_abs_diff": max(diffs), "texts": len(VALIDATION_TEXTS)}
    job.say(f"      fp32: min cosine {min_cosine:.8f}, max |diff| {max(diffs):.2e}")
    if job.options.validate and min_cosine < MIN_COSINE:
        raise ExportValidationError(
            f"The ONNX fp32 sentence vectors differ from PyTorch (min cosine {min_cosine:.8f}, need "
            f"{MIN_COSINE}); the export is wrong and was not written. Report the model id."
        )
    job.variants["fp32"] = file_entry(job.staging, FP32_FILE, state.fidelity)


def calibrate_scores(job: ExportJob) -> None:
    """Step: fit the multi-label bias on the built-in labelled texts with the export's template
    (see ``_embedding_calibration``); the scales are the fixed defaults of ``Scoring``."""
    job.stage("calibrate", "fitting the multi-label score bias on the built-in labelled texts")
    state = _state(job)
    scorer = _scorer(job, FP32_FILE)
    items = builtin_labelled()
    rows, gold = [], []
    for candidates in dict.fromkeys(item.candidates for item in items):
        group = [item for item in items if item.candidates == candidates]
        hypotheses = build_hypotheses(list(candidates), job.options.template)
        rows += list(scorer.cosines([item.text for item in group], hypotheses, batch_size=32))
        gold += [candidates.index(item.label) for item in group]
    positive = np.concatenate([np.arange(len(row)) == g for row, g in zip(rows, gold)])
    defaults = Scoring()
    bias = fit_bias(np.concatenate(rows), positive, defaults.multi_scale)
    state.scoring = Scoring(defaults.single_scale, defaults.multi_scale, bias)
    accuracy = float(np.mean([int(np.argmax(row)) == g for row, g in zip(rows, gold)]))
    state.calibration = {
        "source": "built-in labelled texts", "texts": len(items), "template": job.options.template,
        "accuracy": round(accuracy, 4),
        "method": "scales fixed (the softmax temperature sentence-embedding models are trained with); "
                  "multi-label bias by least log-loss of gold vs other labels",
    }
    job.say(f"      scores: softmax scale {defaults.single_scale}; multi-label sigmoid scale {defaults.multi_scale}, "
            f"fitted bias {bias}; fp32 accuracy on the calibration texts {accuracy:.1%}")


def quantize_embedding_int8(job: ExportJob) -> None:
    """Step: int8 kept only if it ranks labels like fp32 (see ``int8.embedding``)."""
    options = job.options
    if not options.quantize_int8:
        job.stage("quantize", "skipped (--quantize none)")
        return
    texts = [item.text for item in builtin_labelled()]
    job.stage("quantize", f"int8 ranking guard, {len(texts)} texts x {len(GUARD_LABEL_SETS)} label sets, "
              f"min expected agreement {options.min_agreement:.1%}")
    guard = guard_int8(
        job.staging, job.path(FP32_FILE), job.path(INT8_FILE), texts=texts,
        statistics_texts=list(VALIDATION_TEXTS), label_sets=GUARD_LABEL_SETS,
        template=options.template, min_agreement=options.min_agreement, keep_lossy=options.keep_lossy_int8,
        external_data=job.external_data, progress=job.say,
    )
    job.guard = guard
    if guard.chosen is None:
        job.say(f"      no int8 candidate reached {options.min_agreement:.1%}: the bundle ships fp32 only")
        return
    chosen = guard.chosen
    entry = file_entry(job.staging, INT8_FILE, {
        "reference": "onnx-fp32", "validated": not guard.kept_lossy,
        "calibration_agreement": round(chosen.measures["top1_agreement"], 6),
        "expected_agreement": round(chosen.heldout_agreement, 6),
        "margin_shift_rms": round(chosen.measures["margin_shift_rms"], 6),
        "label_order_agreement": round(chosen.measures["label_order_agreement"], 6),
        "min_agreement": options.min_agreement, "guard_passed": chosen.passed,
    })
    entry["quantization"] = {**chosen.config.to_json(), "guard": guard.to_json()}
    entry["label_variant"] = "fp32"  # what the guard measured: int8 texts against fp32 label vectors
    job.variants["int8"] = entry


def write_embedding_manifest(job: ExportJob) -> None:
    """Step: the final ``zsl_onnx.json`` (kind "embedding")."""
    job.stage("write", "manifest and bundle")
    _write(job, job.variants)


EMBEDDING_STEPS: tuple[Step, ...] = (
    export_body, validate_vectors, calibrate_scores, quantize_embedding_int8, write_embedding_manifest,
)


def _load_body(model: SentenceTransformerModel, trust_remote_code: bool) -> tuple[Any, Any]:
    return load_pretrained(model.transformer_dir, "AutoModel", trust_remote_code)


def _scorer(job: ExportJob, relative: str) -> Any:
    return load_embedding_scorer(
        read_bundle(job.staging), job.path(relative), max_length=None, providers=None, threads=None, session_options=None
    )


def _state(job: ExportJob) -> EmbeddingState:
    """The embedding part of ``job``, which the load step fills in before any other step runs."""
    assert job.embedding is not None, "load_sentence_transformer runs first"
    return job.embedding


def _write(job: ExportJob, variants: dict[str, Any]) -> None:
    state = _state(job)
    save_manifest(
        job, variants,
        # 3 only where a reader must know label_variant; an fp32-only bundle stays readable by 2
        format_version=EMBEDDING_MANIFEST_VERSION if any("label_variant" in v for v in variants.values()) else 2,
        kind="embedding",
        embedding={
            "pooling": state.model.pooling.to_json(),
            "prompts": state.prompts,
            "scoring": {**state.scoring.to_json(), "calibration": state.calibration},
        },
        validation={
            "enabled": job.options.validate, "min_cosine": MIN_COSINE, "texts": len(VALIDATION_TEXTS),
            "reference": "transformers model + sentence-transformers Pooling/Normalize reimplemented in PyTorch",
        },
    )
