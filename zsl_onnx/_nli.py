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
from tokenizers import Encoding

from ._bundle import Bundle, VariantFile
from ._exceptions import BundleError, HypothesisTooLongError
from ._inference import run_encodings
from ._labels import LabelSpec, resolve_labels
from ._postprocess import label_scores
from ._scorer import MIN_WINDOW, WINDOW_SLACK, LoadOptions, Scorer
from ._session import LogitsSession, create_session
from ._tokenization import PairTokenizer
from ._truncation import overflow_tokens, warn_truncated
from ._windows import combine_rows, split_windows

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

    def label_scores_per_text(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None, warn: bool = True,
    ) -> list[np.ndarray]:
        unique: dict[str, int] = {}
        pairs = [(i, unique.setdefault(h, len(unique))) for i, hypotheses in enumerate(hypothesis_sets) for h in hypotheses]
        grid = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        logits = self._logits(texts, list(unique), grid, batch_size, max_tokens, warn=warn)
        ends = np.cumsum([len(hypotheses) for hypotheses in hypothesis_sets])
        return [
            label_scores(rows[None], self.labels, multi_label=multi_label)[0]
            for rows in np.split(logits, ends[:-1])
        ]

    def chunked_label_scores(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None, max_windows: int | None,
    ) -> list[np.ndarray]:
        longest = max(len(e.ids) for e in self.tokenizer.encode_hypotheses(sorted({h for s in hypothesis_sets for h in s})))
        budget = self.max_length - self.tokenizer.pair_specials - longest - WINDOW_SLACK
        if budget < MIN_WINDOW:
            raise HypothesisTooLongError(
                f"The longest hypothesis takes {longest} tokens, which leaves {max(budget, 0)} of max_length="
                f"{self.max_length} for a window of text (long_text='chunk' needs {MIN_WINDOW}). Shorten the labels "
                "or the hypothesis template."
            )
        windows = split_windows(self.tokenizer.probe, texts, budget, max_windows)
        warn_truncated(texts, windows.dropped, self.max_length)
        rows = self.label_scores_per_text(
            windows.texts, [hypothesis_sets[i] for i in windows.owner], multi_label=multi_label,
            batch_size=batch_size, max_tokens=max_tokens, warn=False,
        )
        return [combine_rows(np.stack([rows[k] for k in ks]), multi_label=multi_label) for ks in windows.rows_of(len(texts))]

    def pair_logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None
    ) -> np.ndarray:
        index = np.arange(len(premises))
        return self._logits(premises, hypotheses, np.stack([index, index], axis=1), batch_size, max_tokens)

    def _logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], index_pairs: np.ndarray, batch_size: int,
        max_tokens: int | None, *, warn: bool = True,
    ) -> np.ndarray:
        """Logits for (premise index, hypothesis index) rows, in row order."""
        hypothesis_encodings = self.tokenizer.encode_hypotheses(hypotheses)
        premise_encodings = self.tokenizer.encode_premises(premises)
        if warn:
            self._warn_truncated(premises, premise_encodings, hypothesis_encodings, index_pairs)
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

    def _warn_truncated(
        self, premises: Sequence[str], premise_encodings: list[Encoding], hypothesis_encodings: list[Encoding],
        index_pairs: np.ndarray,
    ) -> None:
        """Tokens of each premise that no pair of it read: those beyond the room its shortest
        hypothesis leaves (only_first cuts the premise of every pair to that room or less)."""
        room = self.max_length - self.tokenizer.pair_specials - np.array([len(e.ids) for e in hypothesis_encodings])
        widest = np.zeros(len(premises), dtype=np.int64)
        np.maximum.at(widest, index_pairs[:, 0], room[index_pairs[:, 1]])
        dropped = [
            max(0, len(encoding.ids) + overflow_tokens(encoding) - int(most))
            for encoding, most in zip(premise_encodings, widest)
        ]
        warn_truncated(premises, dropped, self.max_length)
