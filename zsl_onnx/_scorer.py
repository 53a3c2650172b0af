"""The one protocol every model kind implements, and what the kinds share when they load.

A scorer turns texts and label hypotheses into a [texts, labels] score matrix; the classifier
holds one and never asks which kind it is. Each kind lives in its own module (:mod:`._nli`,
:mod:`._embedding`) as a subclass of :class:`Scorer`, with a ``load`` classmethod that reads
its parts from a bundle. A new kind is one new module and one line in :data:`._classifier.SCORERS`.

What only some kinds can do (raw NLI logits, sentence vectors) is a method here that refuses
with a message naming the kind that can; a kind that can overrides it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from ._bundle import Bundle, VariantFile
from ._exceptions import InvalidInputError
from ._session import ProviderSpec
from ._tokenization import resolve_max_length

__all__ = ["WINDOW_SLACK", "LoadOptions", "Scorer", "model_max_length"]

# Tokens a window leaves free below the model's room: a window's text tokenized on its own may
# take a token or two more than inside the whole text (byte-level BPE's leading space).
WINDOW_SLACK = 4
# The fewest tokens a window may hold; a hypothesis or prompt that leaves less is refused.
MIN_WINDOW = 16


@dataclass(frozen=True)
class LoadOptions:
    """What ``from_pretrained`` passes every kind's ``load``: the token limit (checked) and the
    session settings."""

    max_length: int
    providers: Sequence[ProviderSpec] | None = None
    threads: int | None = None
    session_options: ort.SessionOptions | None = None


def model_max_length(bundle: Bundle, requested: int | None) -> int:
    """The token limit to run at: ``requested`` if it is an integer from 8 to the model's own
    limit, else the model's limit. The one place this rule lives, whatever the kind."""
    manifest = bundle.manifest or {}
    limit = manifest.get("max_length") or resolve_max_length(bundle.tokenizer_config, bundle.config)
    if requested is None:
        return int(limit)
    if isinstance(requested, bool) or not isinstance(requested, int) or not 8 <= requested <= limit:
        raise InvalidInputError(
            f"max_length must be an integer from 8 to the model's limit {limit}, not {requested!r}."
        )
    return requested


class Scorer(ABC):
    """Label scores for texts, by some model kind; see the module docstring."""

    kind: ClassVar[str]  # the manifest's "kind"
    title: ClassVar[str]  # how messages name it: "NLI", "embedding"

    @classmethod
    @abstractmethod
    def load(cls, bundle: Bundle, chosen: VariantFile, options: LoadOptions) -> Scorer:
        """Build this kind's scorer from a read bundle and the variant file chosen to run."""

    @property
    @abstractmethod
    def max_length(self) -> int:
        """Tokens of one model input (a text, or a text-hypothesis pair)."""

    @property
    @abstractmethod
    def providers(self) -> list[str]:
        """The execution providers the session runs on."""

    def describe(self) -> Mapping[str, Any]:
        """Fields a repr shows beyond kind, variant, providers and max_length."""
        return {}

    @abstractmethod
    def label_scores(
        self, texts: Sequence[str], hypotheses: Sequence[str], *, multi_label: bool, batch_size: int,
        max_tokens: int | None,
    ) -> np.ndarray:
        """Scores [texts, labels] in the given label order, as the pipeline computes them."""

    @abstractmethod
    def label_scores_per_text(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None,
    ) -> list[np.ndarray]:
        """One score row per text for its own hypotheses, all texts in one batched pass; each row
        equals :meth:`label_scores` of that text alone with its hypotheses."""

    @abstractmethod
    def chunked_label_scores(
        self, texts: Sequence[str], hypothesis_sets: Sequence[Sequence[str]], *, multi_label: bool, batch_size: int,
        max_tokens: int | None, max_windows: int | None,
    ) -> list[np.ndarray]:
        """Like :meth:`label_scores_per_text`, but each text is read whole, as overlapping windows
        (see :mod:`._windows`), at most ``max_windows`` of them."""

    def pair_logits(
        self, premises: Sequence[str], hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None
    ) -> np.ndarray:
        """Raw NLI logits [pairs, classes]; only NLI models have them."""
        raise InvalidInputError(
            f"pair_logits needs an NLI bundle; this is an {self.title} bundle (see similarities())."
        )

    def cosines(
        self, texts: Sequence[str], hypotheses: Sequence[str], *, batch_size: int, max_tokens: int | None
    ) -> np.ndarray:
        """Raw cosine similarities [texts, labels]; only embedding models have them."""
        raise InvalidInputError(f"similarities() needs an embedding bundle; this is an {self.title} bundle.")

    def embed(self, texts: Sequence[str], *, batch_size: int, max_tokens: int | None) -> np.ndarray:
        """Sentence vectors [texts, dim]; only embedding models make them."""
        raise InvalidInputError(f"embed() needs an embedding bundle; this is an {self.title} bundle.")
