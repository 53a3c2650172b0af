"""The state an export carries from step to step: what was asked, and what each step produced.

Every step of the pipeline (see ``_api``) is a function ``step(job) -> None`` that reads the
fields earlier steps filled in and fills in its own, so a new step or a new source kind is one
more function, not another branch inside a long one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import DEFAULT_HUB_TIMEOUT, DEFAULT_TEMPLATE, LabelSpec, Scoring

from ._errors import ExportError
from ._st_source import SentenceTransformerModel
from ._validation import VALIDATION_PAIRS, Comparison, compare
from .int8.calibration import CalibrationSet
from .int8.candidates import BASE_CANDIDATES, QuantConfig
from .int8.nli import PairRunner
from .int8.search import GuardReport

__all__ = [
    "EXPORTED_FILE",
    "FP16_FILE",
    "FP32_FILE",
    "INT8_FILE",
    "OPTIMIZED_FILE",
    "EmbeddingState",
    "ExportJob",
    "ExportOptions",
    "Progress",
    "Step",
]

Progress = Callable[[str], None]
Step = Callable[["ExportJob"], None]

FP32_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_quantized.onnx"
FP16_FILE = "onnx/model_fp16.onnx"
OPTIMIZED_FILE = "onnx/.model_optimized.onnx"  # int8 source; never shipped
EXPORTED_FILE = "onnx/.model_exported.onnx"  # fp32 as exported, before the head-token rewrite; never shipped

# The progress headings of the NLI pipeline, in order; each pipeline names its own (see _api).
NLI_STAGES = ("load", "export", "validate", "quantize", "fp16", "write")


@dataclass(frozen=True)
class ExportOptions:
    """What an export is asked to do: the one spelling of every option and its default.

    ``zsl-export`` builds one from its arguments, :func:`export_bundle` from its keywords; the
    steps read it from ``ExportJob.options``. Checked once before any work starts (``check_request``).
    """

    model: str | Path  # Hub id, local directory, .zip or package:<module>
    output: Path
    revision: str | None = None
    trust_remote_code: bool = False
    template: str = DEFAULT_TEMPLATE
    quantize_int8: bool = True
    # int8 guard: agreement with fp32 a candidate needs (NLI: top-1 on held-out calibration pairs;
    # embeddings: expected agreement of the label decisions)
    min_agreement: float = 0.99
    calibration_file: str | Path | None = None
    calibration_labels: Sequence[str] | None = None
    keep_lossy_int8: bool = False
    int8_candidates: Sequence[QuantConfig] = BASE_CANDIDATES
    measure_int8_speed: bool = True
    fp16: bool = False
    fp16_min_agreement: float = 0.99  # fp16's top-1 agreement with fp32 on held-out calibration pairs
    validate: bool = True
    atol: float = 1e-3
    overwrite: bool = False
    cache_dir: str | Path | None = None
    threads: int | None = None
    local_files_only: bool = False
    hub_timeout: float | None = DEFAULT_HUB_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        if not 0.0 < self.fp16_min_agreement <= 1.0:
            raise ExportError(f"fp16_min_agreement must be in (0, 1], not {self.fp16_min_agreement!r}.")


@dataclass
class EmbeddingState:
    """What the embedding steps add to an export job (see ``_embedding_export``)."""

    model: SentenceTransformerModel
    prompts: dict[str, str]
    fidelity: dict[str, Any] = field(default_factory=dict)
    scoring: Scoring = field(default_factory=Scoring)
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportJob:
    """One export in progress. Fields are filled in by the steps, in pipeline order."""

    options: ExportOptions
    say: Progress
    calibration: CalibrationSet
    # load
    source: Path | None = None
    resolved_revision: str | None = None
    labels: LabelSpec | None = None
    tokenizer: Any = None
    torch_model: Any = None
    # export: the bundle is built in ``staging`` and moved to the output at the end
    staging: Path = Path()
    config: dict[str, Any] = field(default_factory=dict)
    max_length: int = 0
    external_data: bool = False
    # validate: PyTorch fp32 logits on VALIDATION_PAIRS, and how the shipped fp32 graph matches them
    reference: np.ndarray | None = None
    fp32: Comparison | None = None
    head_token: dict[str, Any] = field(default_factory=dict)
    # quantize, fp16: manifest entries of the variants besides fp32
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    guard: GuardReport | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    # embedding bundles: the sentence-transformers modules and what their steps found (see _embedding_export)
    embedding: EmbeddingState | None = None
    stages: tuple[str, ...] = NLI_STAGES  # the pipeline's progress headings, set when its kind is known
    _calibration_run: tuple[PairRunner, np.ndarray] | None = None

    def stage(self, name: str, text: str) -> None:
        """Print a numbered progress heading: ``[3/6] validate: ...``."""
        self.say(f"[{self.stages.index(name) + 1}/{len(self.stages)}] {name}: {text}")

    def path(self, relative: str) -> Path:
        return self.staging / relative

    def compare(self, variant: str) -> Comparison:
        """A variant's logits on the validation pairs against PyTorch's, run through the real
        runtime (tokenizer.json, batching, session), not a shortcut."""
        assert self.reference is not None, "the validate step runs first"
        premises = [p for p, _ in VALIDATION_PAIRS]
        hypotheses = [h for _, h in VALIDATION_PAIRS]
        classifier = ZeroShotClassifier.from_pretrained(self.staging, variant=variant, verify=False)
        return compare(self.reference, classifier.pair_logits(premises, hypotheses))

    def calibration_run(self) -> tuple[PairRunner, np.ndarray]:
        """The calibration runner and fp32's calibration logits, computed once for every step
        that checks a variant against fp32."""
        if self._calibration_run is None:
            runner = PairRunner(
                self.staging, self.calibration, max_length=self.max_length, threads=self.options.threads
            )
            self._calibration_run = (runner, runner.logits(self.path(FP32_FILE)))
        return self._calibration_run
