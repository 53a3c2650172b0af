"""The NLI kind: every (text, hypothesis) pair through a cross-encoder, entailment scores the label.

This is the transformers ``zero-shot-classification`` pipeline's method. Each text is
tokenized once and joined to every hypothesis (:mod:`._tokenization`); the pairs run through
the one inference loop (:func:`._inference.run_encodings`) in bounded chunks, and
:mod:`._postprocess` turns the logits into the pipeline's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ._bundle import Bundle, VariantFile
from ._exceptions import BundleError
from ._inference import run_encodings
from ._labels import LabelSpec, resolve_labels
from ._postprocess import label_scores
from ._scorer import LoadOptions, Scorer
from ._session import LogitsSession, create_session
from ._tokenization import PairTokenizer

__all__ = ["PAIRS_IN_FLIGHT", "NliScorer"]

# Pairs tokenized and held at once; bounds memory for calls with many texts x many labels.
PAIRS_IN_FLIGHT = 4096


class NliScorer(Scorer):
    """Scores labels with an NLI cross-encoder: tokenizer, logits session and label mapping."""

    kind: ClassVar[str] = "nli"
    title: ClassVar[str] = "NLI"

    def __init__(self, tokenizer: PairTokenizer, session: LogitsSession, labels: LabelSpec) -> None:
        self.tokenizer = tokenizer
        self.session = session
        self.labels = labels

    @classmethod
    def load(cls, bundle: Bundle, chosen: VariantFile, options: LoadOptions) -> NliScorer:
        manifest = bundle.manifest or {}
        labels = LabelSpec.from_json(manifest["labels"]) if "labels" in manifest else resolve_labels(bundle.config)
        tokenizer = PairTokenizer.from_file(
            bundle.tokenizer_file, tokenizer_config=bundle.tokenizer_config, config=bundle.config,
            max_length=options.max_length,
        )
        session = create_session(
            chosen.path, providers=options.providers, threads=options.threads, session_options=options.session_options
        )
        return cls(tokenizer, LogitsSession(session), labels)

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def providers(self) -> list[str]:
        return self.session.providers

    def describe(self) -> Mapping[str, Any]:
        return {"labels": list(self.labels.names)}

    def label_scores(
        self, texts: Sequence[str], hypotheses: Sequence[str], *, multi_label: bool, batch_size: int,
        max_tokens: int | None,
    ) -> np.ndarray:
        grid = np.stack(
            np.meshgrid(np.arange(len(texts)), np.arange(len(hypotheses)), indexing="ij"), axis=-1
        ).reshape(-1, 2)
        logits = self._logits(texts, hypotheses, grid, batch_size, max_tokens)
        return label_scores(logits.reshape(len(texts), len(hypotheses), -1), self.labels, multi_label=multi_label)

    def pair_logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None
    ) -> np.ndarray:
        index = np.arange(len(premises))
        return self._logits(premises, hypotheses, np.stack([index, index], axis=1), batch_size, max_tokens)

    def _logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], index_pairs: np.ndarray, batch_size: int,
        max_tokens: int | None,
    ) -> np.ndarray:
        """Logits for (premise index, hypothesis index) rows, in row order."""
        hypothesis_encodings = self.tokenizer.encode_hypotheses(hypotheses)
        premise_encodings = self.tokenizer.encode_premises(premises)
        n_classes = len(self.labels.names)
        out = np.empty((len(index_pairs), n_classes), dtype=np.float32)
        for start in range(0, len(index_pairs), PAIRS_IN_FLIGHT):
            chunk = index_pairs[start : start + PAIRS_IN_FLIGHT]
            encodings = [self.tokenizer.join(premise_encodings[p], hypothesis_encodings[h]) for p, h in chunk]
            logits = run_encodings(
                encodings, self.session.run, batch_size=batch_size, pad_id=self.tokenizer.pad_id, max_tokens=max_tokens
            )
            if logits.shape[1] != n_classes:
                raise BundleError(
                    f"The model returns {logits.shape[1]} logits per pair but its config names "
                    f"{n_classes} labels {list(self.labels.names)}; config.json does not match the ONNX file."
                )
            out[start : start + len(chunk)] = logits
        return out
