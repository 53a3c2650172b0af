"""ZeroShotClassifier: orchestrates hypotheses -> tokenization -> batching -> session -> scores."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, overload

import numpy as np
import onnxruntime as ort

from ._bundle import DEFAULT_HUB_TIMEOUT, Bundle, VariantFile, download, read_bundle
from ._embedding import EmbeddingScorer
from ._exceptions import BundleError, InvalidInputError
from ._hypotheses import DEFAULT_TEMPLATE, build_hypotheses, parse_label_sets, parse_labels, parse_sequences
from ._nli import NliScorer
from ._postprocess import ranked_result
from ._scorer import LoadOptions, Scorer, model_max_length
from ._session import ProviderSpec, provider_name

__all__ = ["CPU_MAX_BATCH_TOKENS", "DEFAULT_BATCH_SIZE", "DEFAULT_MAX_WINDOWS", "SCORERS", "ZeroShotClassifier"]

DEFAULT_BATCH_SIZE = 32
# CPU cap on padded tokens per micro-batch (rows x width): larger batches fall out of cache.
# Measured by benchmarks/bench_speed.py (token-cap table); GPU providers get no cap.
CPU_MAX_BATCH_TOKENS = 512
# long_text="chunk" reads at most this many windows of a text unless told otherwise: a bound on
# the cost of one text (16 windows of a 256-token model cover about 3,000 words).
DEFAULT_MAX_WINDOWS = 16
LongText = Literal["truncate", "chunk"]
# The scorer class of each bundle kind (the manifest's "kind"): the one place kinds are listed.
SCORERS: Mapping[str, type[Scorer]] = MappingProxyType({"nli": NliScorer, "embedding": EmbeddingScorer})


class ZeroShotClassifier:
    """Zero-shot text classification on ONNX Runtime, with an NLI cross-encoder or an embedding model.

    Build one with :meth:`from_pretrained`. Calling it returns what
    ``transformers.pipeline("zero-shot-classification")`` returns for the same model. The
    model kind is a :class:`~zsl_onnx._scorer.Scorer` (``scorer``); this class checks the
    caller's arguments, builds hypotheses and ranks results, the same for every kind. One
    classifier may serve several threads at once.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        hypothesis_template: str = DEFAULT_TEMPLATE,
        variant: str = "fp32",
        fidelity: Mapping[str, Any] | None = None,
        max_batch_tokens: int | None = None,
    ) -> None:
        if not isinstance(scorer, Scorer):
            raise InvalidInputError(
                f"scorer must be a zsl-onnx Scorer (an NliScorer or EmbeddingScorer), not {type(scorer).__name__}; "
                "ZeroShotClassifier.from_pretrained builds one from a bundle."
            )
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 1
        ):
            raise InvalidInputError(
                f"max_batch_tokens must be a positive integer or None (no cap), not {max_batch_tokens!r}."
            )
        self.scorer = scorer
        self.max_batch_tokens = max_batch_tokens
        self.hypothesis_template = hypothesis_template
        self.variant = variant
        self.fidelity: Mapping[str, Any] = MappingProxyType(dict(fidelity or {}))

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *,
        variant: str | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        providers: Sequence[ProviderSpec] | None = None,
        threads: int | None = None,
        session_options: ort.SessionOptions | None = None,
        max_length: int | None = None,
        max_batch_tokens: int | Literal["auto"] | None = "auto",
        verify: bool = True,
        hub_timeout: float | None = DEFAULT_HUB_TIMEOUT,
    ) -> ZeroShotClassifier:
        """Load a bundle from a local directory or a Hugging Face Hub repo id.

        ``variant`` is "fp32", "int8" or "fp16"; by default int8 on CPU when the bundle has it
        (fp16 on GPU providers), else fp32. ``max_length`` may lower the model's token limit
        to trade accuracy on long texts for speed. ``max_batch_tokens`` caps the padded tokens of
        one micro-batch ("auto": 512 on CPU, no cap on GPU providers; None: no cap). ``verify`` checks file sizes and sha256
        against the manifest, catching truncated downloads before they give wrong answers.
        ``hub_timeout`` bounds each Hugging Face Hub request, in seconds.
        """
        on_gpu = any(provider_name(p) != "CPUExecutionProvider" for p in providers or ())
        root = _bundle_root(path_or_repo_id, variant=variant, on_gpu=on_gpu, revision=revision,
                            cache_dir=cache_dir, local_files_only=local_files_only, hub_timeout=hub_timeout)
        bundle = read_bundle(root)
        chosen = bundle.choose(variant, on_gpu=on_gpu)
        if verify:
            bundle.verify(chosen)
        options = LoadOptions(model_max_length(bundle, max_length), providers, threads, session_options)
        scorer = SCORERS[bundle.kind].load(bundle, chosen, options)
        return cls(scorer, **_common_options(bundle, chosen, on_gpu=on_gpu, max_batch_tokens=max_batch_tokens))

    @property
    def kind(self) -> str:
        """The bundle's kind: "nli" (scores each text-label pair) or "embedding" (cosines of vectors)."""
        return self.scorer.kind

    @property
    def max_length(self) -> int:
        """Tokens of one model input: a text-hypothesis pair (NLI) or a text (embedding)."""
        return self.scorer.max_length

    @property
    def providers(self) -> list[str]:
        return self.scorer.providers

    def __repr__(self) -> str:
        fields = {"kind": self.kind, "variant": self.variant, "providers": self.providers, **self.scorer.describe(),
                  "max_length": self.max_length}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    @overload
    def __call__(
        self,
        sequences: str,
        candidate_labels: str | Sequence[str] | Sequence[Sequence[str]],
        hypothesis_template: str | None = ...,
        multi_label: bool = ...,
        batch_size: int = ...,
        long_text: LongText = ...,
        max_windows: int | None = ...,
    ) -> dict[str, Any]: ...

    @overload
    def __call__(
        self,
        sequences: Sequence[str],
        candidate_labels: str | Sequence[str] | Sequence[Sequence[str]],
        hypothesis_template: str | None = ...,
        multi_label: bool = ...,
        batch_size: int = ...,
        long_text: LongText = ...,
        max_windows: int | None = ...,
    ) -> list[dict[str, Any]]: ...

    def __call__(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str] | Sequence[Sequence[str]],
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        long_text: LongText = "truncate",
        max_windows: int | None = DEFAULT_MAX_WINDOWS,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Classify; returns the pipeline's ``{"sequence", "labels", "scores"}`` dict(s).

        A single string gives one dict, a list gives a list. Labels come sorted by score.
        ``candidate_labels`` may also be one list of labels per text: all pairs still run in
        one batched pass, and each text's result equals the call for that text alone.

        ``long_text="truncate"`` cuts a text that does not fit the model, as the pipeline does
        (with a :class:`~zsl_onnx.TruncationWarning`); ``"chunk"`` reads it whole, as
        overlapping windows of at most ``max_windows`` (docs/long-texts.md).
        """
        texts, single = parse_sequences(sequences)
        label_lists, rows = self._score_rows(
            texts, candidate_labels, hypothesis_template, multi_label, batch_size, long_text, max_windows
        )
        results = [ranked_result(text, labels, row) for text, labels, row in zip(texts, label_lists, rows)]
        return results[0] if single else results

    def scores(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str] | Sequence[Sequence[str]],
        hypothesis_template: str | None = None,
        multi_label: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        long_text: LongText = "truncate",
        max_windows: int | None = DEFAULT_MAX_WINDOWS,
    ) -> np.ndarray | list[np.ndarray]:
        """Scores as a float32 matrix [texts, labels], labels in the order given (not ranked);
        with one label list per text, a list of one score row per text."""
        texts, _ = parse_sequences(sequences)
        return self._score_rows(
            texts, candidate_labels, hypothesis_template, multi_label, batch_size, long_text, max_windows
        )[1]

    def pair_logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Raw NLI logits [pairs, classes] for explicit premise/hypothesis pairs (NLI evaluation)."""
        premise_list, _ = parse_sequences(premises)
        hypothesis_list, _ = parse_sequences(hypotheses)
        if len(premise_list) != len(hypothesis_list):
            raise InvalidInputError(
                f"Got {len(premise_list)} premises but {len(hypothesis_list)} hypotheses; "
                "pair_logits needs one hypothesis per premise."
            )
        return self.scorer.pair_logits(
            premise_list, hypothesis_list, batch_size=_batch_size(batch_size), max_tokens=self.max_batch_tokens
        )

    def similarities(
        self,
        sequences: str | Sequence[str],
        candidate_labels: str | Sequence[str],
        hypothesis_template: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> np.ndarray:
        """Raw cosine similarities [texts, labels] of an embedding bundle, labels in the order given."""
        texts, _ = parse_sequences(sequences)
        hypotheses = self._hypotheses(parse_labels(candidate_labels), hypothesis_template)
        return self.scorer.cosines(texts, hypotheses, batch_size=_batch_size(batch_size), max_tokens=self.max_batch_tokens)

    def embed(self, sequences: str | Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Sentence vectors [texts, dim] of an embedding bundle (pooled, and normalized if the model does)."""
        texts, _ = parse_sequences(sequences)
        return self.scorer.embed(texts, batch_size=_batch_size(batch_size), max_tokens=self.max_batch_tokens)

    def _hypotheses(self, labels: list[str], template: str | None) -> list[str]:
        return build_hypotheses(labels, template if template is not None else self.hypothesis_template)

    def _score_rows(
        self, texts: list[str], candidate_labels: object, template: str | None, multi_label: bool, batch_size: int,
        long_text: LongText, max_windows: int | None,
    ) -> tuple[list[list[str]], Any]:
        """Each text's labels and its score row: one matrix for a shared label set, else a list."""
        chunk = _long_text(long_text, max_windows)
        label_lists, shared = parse_label_sets(candidate_labels, len(texts))
        options = {"multi_label": multi_label, "batch_size": _batch_size(batch_size), "max_tokens": self.max_batch_tokens}
        if shared and not chunk:
            hypotheses = self._hypotheses(label_lists[0], template)
            return label_lists, self.scorer.label_scores(texts, hypotheses, **options)
        hypothesis_sets = [self._hypotheses(labels, template) for labels in label_lists]
        if not chunk:
            return label_lists, self.scorer.label_scores_per_text(texts, hypothesis_sets, **options)
        rows = self.scorer.chunked_label_scores(texts, hypothesis_sets, max_windows=max_windows, **options)
        return label_lists, np.stack(rows) if shared else rows


def _long_text(long_text: str, max_windows: int | None) -> bool:
    """Whether to chunk; refuses an unknown mode or a window bound that is not a positive integer."""
    if long_text not in ("truncate", "chunk"):
        raise InvalidInputError(f"long_text must be 'truncate' or 'chunk', not {long_text!r}.")
    if max_windows is not None and (isinstance(max_windows, bool) or not isinstance(max_windows, int) or max_windows < 1):
        raise InvalidInputError(f"max_windows must be a positive integer or None (no bound), not {max_windows!r}.")
    return long_text == "chunk"


def _batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, not {batch_size!r}.")
    return batch_size


def _bundle_root(
    path_or_repo_id: str | Path,
    *,
    variant: str | None,
    on_gpu: bool,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    hub_timeout: float | None,
) -> Path:
    """The bundle's directory: a local one as given, else the Hub download of the files needed."""
    root = _local_dir(path_or_repo_id)
    if root is not None:
        return root
    return download(
        str(path_or_repo_id),
        variant=variant,
        on_gpu=on_gpu,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        timeout=hub_timeout,
    )


def _common_options(
    bundle: Bundle, chosen: VariantFile, *, on_gpu: bool, max_batch_tokens: int | Literal["auto"] | None
) -> dict[str, Any]:
    """Constructor options both bundle kinds share, from the manifest and the chosen variant."""
    manifest = bundle.manifest or {}
    gpu_cap = None if on_gpu else CPU_MAX_BATCH_TOKENS
    return {
        "hypothesis_template": manifest.get("hypothesis_template", DEFAULT_TEMPLATE),
        "variant": chosen.name,
        "fidelity": chosen.fidelity,
        "max_batch_tokens": gpu_cap if max_batch_tokens == "auto" else max_batch_tokens,
    }


# What a Hub repo id can look like: "name" or "owner/name", letters, digits, "-", "_", ".".
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _local_dir(path_or_repo_id: str | Path) -> Path | None:
    """A local directory, or None for something that can only be a Hub repo id.

    A path that does not exist is named as such when it cannot be a repo id, or when its first
    part exists here (``bundles/nope`` beside a ``bundles`` directory): it is a mistyped path,
    and asking the Hub for it would only bury that under a network error.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    looks_local = (
        isinstance(path_or_repo_id, Path)
        or path.exists()
        or not _REPO_ID.fullmatch(text)
        or Path(text.split("/")[0]).is_dir()
    )
    if looks_local:
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise BundleError(
            f"{text} is not a model directory: it {what}. Pass a directory made by zsl-export, "
            "or a Hugging Face Hub repo id like 'org/model'."
        )
    return None
