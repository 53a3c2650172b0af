"""The embedding path: texts and label hypotheses encoded once each, cosine similarity scores labels.

One encoder pass per text plus one per label hypothesis, instead of one per (text, label)
pair: the cost of a call grows with texts + labels, not texts x labels. Label hypotheses are
encoded once per (labels, template) and kept in a small thread-safe cache across calls, so a
corpus classified in chunks with the same labels encodes its labels once.

An int8 bundle may name another variant (fp32) for the label hypotheses: labels are few,
short and cached, so encoding them at full precision costs little, and it removes the noise
that matters most. A label set's decision rests on small differences between its label
vectors, and a short hypothesis gets no averaging over tokens, so int8 noise in label vectors
flips far more decisions than the same noise in text vectors (see docs/embeddings.md).

Stages: :mod:`._text_tokenization` -> :func:`._inference.run_encodings` (the one inference
loop) -> :mod:`._encoder` (session + :mod:`._pooling`) -> :mod:`._similarity`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding

from ._bundle import Bundle, VariantFile
from ._encoder import EmbeddingSession
from ._exceptions import BundleError, InvalidInputError
from ._inference import run_encodings
from ._pooling import PoolingConfig
from ._scorer import MIN_WINDOW, WINDOW_SLACK, LoadOptions, Scorer, model_max_length
from ._session import ProviderSpec, create_session
from ._similarity import Scoring, cosine_matrix, similarity_scores
from ._text_tokenization import TextTokenizer
from ._truncation import overflow_tokens, warn_truncated
from ._windows import combine_rows, split_windows

__all__ = ["LABEL_CACHE_SIZE", "EmbeddingScorer", "Prompts", "embedding_settings", "load_embedding_scorer", "pool_windows"]

LABEL_CACHE_SIZE = 128  # label sets (hypothesis lists) kept; a set of 50 labels x 384 floats is 77 kB


@dataclass(frozen=True)
class Prompts:
    """Text prepended before encoding: to the texts, and to the label hypotheses."""

    text: str = ""
    label: str = ""


@dataclass(frozen=True)
class EmbeddingSettings:
    """What the manifest says about an embedding bundle (read once in from_pretrained)."""

    pooling: PoolingConfig
    prompts: Prompts
    scoring: Scoring


def embedding_settings(manifest: Mapping[str, Any]) -> EmbeddingSettings:
    """Parse the manifest's ``embedding`` entry, refusing a malformed one with a clear error."""
    entry = manifest.get("embedding")
    if not isinstance(entry, Mapping):
        raise BundleError("The manifest says kind 'embedding' but has no 'embedding' entry; re-export the bundle.")
    prompts = entry.get("prompts", {})
    if not isinstance(prompts, Mapping) or not all(isinstance(prompts.get(k, ""), str) for k in ("text", "label")):
        raise BundleError("The manifest's embedding.prompts entry is malformed; re-export the bundle.")
    return EmbeddingSettings(
        pooling=PoolingConfig.from_json(entry.get("pooling")),
        prompts=Prompts(text=prompts.get("text", ""), label=prompts.get("label", "")),
        scoring=Scoring.from_json(entry.get("scoring", {})),
    )


class EmbeddingScorer(Scorer):
    """Embeds texts and hypotheses and turns their cosines into label scores."""

    kind: ClassVar[str] = "embedding"
    title: ClassVar[str] = "embedding"

    def __init__(
        self,
        tokenizer: TextTokenizer,
        session: EmbeddingSession,
        *,
        label_session: EmbeddingSession | None = None,
        prompts: Prompts = Prompts(),
        scoring: Scoring = Scoring(),
        cache_size: int = LABEL_CACHE_SIZE,
    ) -> None:
        self.tokenizer = tokenizer
        self.session = session
        self.label_session = label_session if label_session is not None else session  # encodes label hypotheses
        self.prompts = prompts
        self.scoring = scoring
        self._cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.label_encodes = 0  # label sets encoded (cache misses); tests read it

    @classmethod
    def load(cls, bundle: Bundle, chosen: VariantFile, options: LoadOptions) -> EmbeddingScorer:
        label = bundle.label_file(chosen)
        return load_embedding_scorer(
            bundle, chosen.path, label_model_path=None if label is None else label.path,
            max_length=options.max_length, providers=options.providers, threads=options.threads,
            session_options=options.session_options,
        )

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def providers(self) -> list[str]:
        return self.session.providers

    def embed(
        self, texts: Sequence[str], *, batch_size: int, max_tokens: int | None = None, prompt: str | None = None,
        warn: bool = True,
    ) -> np.ndarray:
        """Pooled vectors [texts, dim] in micro-batches of at most ``batch_size`` texts and
        ``max_tokens`` padded tokens; each row depends only on its own text (fp32)."""
        prompt = self.prompts.text if prompt is None else prompt
        encodings = self.tokenizer.encode(texts, prompt)
        if warn:
            warn_truncated(texts, [overflow_tokens(e, self.tokenizer.specials) for e in encodings], self.max_length)
        return self._run(self.session, encodings, prompt, batch_size=batch_size, max_tokens=max_tokens)

    def _run(
        self, session: EmbeddingSession, encodings: list[Encoding], prompt: str, *, batch_size: int,
        max_tokens: int | None,
    ) -> np.ndarray:
        prompt_length = self.tokenizer.prompt_length(prompt)
        return run_encodings(
            encodings,
            lambda batch: session.run(batch, prompt_length=prompt_length),
            batch_size=batch_size,
            pad_id=self.tokenizer.pad_id,
            max_tokens=max_tokens,
        )

    def label_vectors(self, hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None = None) -> np.ndarray:
        """Vectors of the hypotheses, from the cache when this label set was seen before."""
        key = tuple(hypotheses)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        encodings = self.tokenizer.encode(hypotheses, self.prompts.label)
        vectors = self._run(self.label_session, encodings, self.prompts.label, batch_size=batch_size, max_tokens=max_tokens)
        vectors.setflags(write=False)  # shared between calls and threads
        with self._lock:
            self.label_encodes += 1
            self._cache[key] = vectors
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors

    def cosines(
        self, texts: Sequence[str], hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None = None
    ) -> np.ndarray:
        """Raw cosine similarity [texts, labels]."""
        labels = self.label_vectors(hypotheses, batch_size=batch_size, max_tokens=max_tokens)
        vectors = self.embed(texts, batch_size=batch_size, max_tokens=max_tokens)
        return _cosines(vectors, labels)

    def label_scores(
        self,
        texts: Sequence[str],
        hypotheses: Sequence[str],
        *,
        multi_label: bool,
        batch_size: int,
        max_tokens: int | None = None,
    ) -> np.ndarray:
        """Calibrated scores [texts, labels] (see :mod:`._similarity`)."""
        cosines = self.cosines(texts, hypotheses, batch_size=batch_size, max_tokens=max_tokens)
        return similarity_scores(cosines, self.scoring, multi_label=multi_label)

    def vector_scores(
        self, vectors: np.ndarray, hypotheses: Sequence[str], *, multi_label: bool, batch_size: int,
        max_tokens: int | None = None,
    ) -> np.ndarray:
        """Calibrated scores [texts, labels] of texts already embedded (``embed``): what
        ``label_scores`` gives for those texts, so callers that embed many requests' texts in
        one pass can score each request on its own rows."""
        labels = self.label_vectors(hypotheses, batch_size=batch_size, max_tokens=max_tokens)
        return similarity_scores(_cosines(vectors, labels), self.scoring, multi_label=multi_label)

    def label_scores_per_text(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None = None,
    ) -> list[np.ndarray]:
        """Texts embedded once; each distinct label set scored against its own texts, as a call
        with that label set alone would (label vectors from the shared cache)."""
        return self._scores_per_text(
            self.embed(texts, batch_size=batch_size, max_tokens=max_tokens), hypothesis_sets,
            multi_label=multi_label, batch_size=batch_size, max_tokens=max_tokens,
        )

    def chunked_label_scores(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None, max_windows: int | None,
    ) -> list[np.ndarray]:
        """Single-label: each text's vector is the mean of its windows' vectors (unit length
        first, so each window counts the same), then scored as one text's vector is. Multi-label:
        each window is scored as a text, and a label takes its highest window score (a label
        holds for a text when it holds anywhere in it, as for NLI bundles). Both chosen by
        ``benchmarks/bench_long_text.py aggregation`` (docs/long-texts.md)."""
        budget = self.max_length - self.tokenizer.specials - self.tokenizer.prompt_length(self.prompts.text) - WINDOW_SLACK
        if budget < MIN_WINDOW:
            raise InvalidInputError(
                f"max_length={self.max_length} leaves {max(budget, 0)} tokens for a window of text after the "
                f"model's prompt; long_text='chunk' needs {MIN_WINDOW}. Raise max_length."
            )
        windows = split_windows(self.tokenizer.probe, texts, budget, max_windows)
        warn_truncated(texts, windows.dropped, self.max_length)
        vectors = self.embed(windows.texts, batch_size=batch_size, max_tokens=max_tokens, warn=False)
        if multi_label:
            scores = self._scores_per_text(vectors, [hypothesis_sets[t] for t in windows.owner], multi_label=True,
                                           batch_size=batch_size, max_tokens=max_tokens)
            return [combine_rows(np.stack([scores[w] for w in rows]), multi_label=True)
                    for rows in windows.rows_of(len(texts))]
        pooled = np.stack([pool_windows(vectors[rows]) for rows in windows.rows_of(len(texts))])
        return self._scores_per_text(
            pooled, hypothesis_sets, multi_label=False, batch_size=batch_size, max_tokens=max_tokens
        )

    def _scores_per_text(
        self, vectors: np.ndarray, hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None,
    ) -> list[np.ndarray]:
        """Each distinct label set scored against the vectors of its texts."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for row, hypotheses in enumerate(hypothesis_sets):
            groups.setdefault(tuple(hypotheses), []).append(row)
        out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(vectors)
        for hypotheses, rows in groups.items():
            scores = self.vector_scores(vectors[rows], hypotheses, multi_label=multi_label, batch_size=batch_size,
                                        max_tokens=max_tokens)
            for row, row_scores in zip(rows, scores):
                out[row] = row_scores
        return out


def pool_windows(vectors: np.ndarray) -> np.ndarray:
    """One text's vector from its windows' vectors: the mean of their unit vectors (a text that
    fits one window keeps its vector as it is, so its scores equal long_text='truncate')."""
    if len(vectors) == 1:
        return vectors[0]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit.mean(axis=0).astype(np.float32)


def _cosines(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosines [texts, labels], refusing label vectors of another width (a mismatched label model)."""
    if len(vectors) and len(labels) and vectors.shape[1] != labels.shape[1]:
        raise BundleError(
            f"The bundle's label model gives {labels.shape[1]}-dim vectors and its text model "
            f"{vectors.shape[1]}-dim ones: its label_variant names a file of another model. "
            "Re-download or re-export the bundle."
        )
    return cosine_matrix(vectors, labels)


def load_embedding_scorer(
    bundle: Bundle,
    model_path: Path,
    *,
    label_model_path: Path | None = None,
    max_length: int | None,
    providers: Sequence[ProviderSpec] | None,
    threads: int | None,
    session_options: ort.SessionOptions | None,
) -> EmbeddingScorer:
    """Tokenizer, sessions and settings of an embedding bundle, from its files and manifest;
    ``label_model_path``: another model file that encodes the label hypotheses."""
    if label_model_path is not None and not label_model_path.is_file():
        raise BundleError(
            f"{label_model_path} is missing: this variant encodes label hypotheses with it (the "
            "manifest's label_variant). Re-download or re-export the bundle."
        )
    settings = embedding_settings(bundle.manifest or {})
    max_length = model_max_length(bundle, max_length)
    tokenizer = TextTokenizer.from_file(
        bundle.tokenizer_file, tokenizer_config=bundle.tokenizer_config, config=bundle.config,
        max_length=max_length,
    )

    def open_session(path: Path) -> EmbeddingSession:
        session = create_session(path, providers=providers, threads=threads, session_options=session_options)
        return EmbeddingSession(session, settings.pooling)

    return EmbeddingScorer(
        tokenizer,
        open_session(model_path),
        label_session=None if label_model_path is None else open_session(label_model_path),
        prompts=settings.prompts,
        scoring=settings.scoring,
    )
