"""Embedding stage 5: cosine similarities -> label scores, with a calibrated scale.

Raw cosines of a sentence-embedding model crowd into a narrow band (all-MiniLM-L6-v2: about
0.0-0.6), so they are not probabilities. Two maps, stored in the manifest, make them usable:

- single-label: ``softmax(scale * cos)`` over the candidate labels (scores sum to 1), with
  scale 20: the temperature (0.05) sentence-embedding models such as all-MiniLM-L6-v2 are
  trained with (a softmax over in-batch cosines). Measured on all-MiniLM-L6-v2 it is also the
  best-calibrated value: on AG News the negative log-likelihood is lowest near 20 and the mean
  top score (0.72) is close to the accuracy (0.76); a scale fitted on clean example texts
  came out three times steeper and overconfident.
- multi-label, or a single candidate: ``sigmoid(scale * (cos - bias))`` per label, scale 20,
  with ``bias`` fitted at export on labelled texts, so a score of 0.5 means "as likely as not
  to be the right label" and a threshold has the same meaning for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._exceptions import BundleError
from ._postprocess import softmax

__all__ = ["DEFAULT_SCORING", "Scoring", "cosine_matrix", "similarity_scores"]


@dataclass(frozen=True)
class Scoring:
    """Scale for the single-label softmax; scale and bias for the multi-label sigmoid."""

    single_scale: float = 20.0
    multi_scale: float = 20.0
    multi_bias: float = 0.15  # replaced by the export's fit

    def __post_init__(self) -> None:
        for name in ("single_scale", "multi_scale", "multi_bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise BundleError(f"The manifest's scoring {name} is {value!r}, not a number; re-export the bundle.")
        if self.single_scale <= 0 or self.multi_scale <= 0:
            raise BundleError("The manifest's scoring scales must be positive; re-export the bundle.")

    def to_json(self) -> dict[str, Any]:
        return {
            "single_label": {"scale": self.single_scale},
            "multi_label": {"scale": self.multi_scale, "bias": self.multi_bias},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scoring:
        try:
            return cls(
                single_scale=data["single_label"]["scale"],
                multi_scale=data["multi_label"]["scale"],
                multi_bias=data["multi_label"]["bias"],
            )
        except (KeyError, TypeError):
            raise BundleError("The manifest's embedding.scoring entry is malformed; re-export the bundle.") from None


DEFAULT_SCORING = Scoring()


def cosine_matrix(texts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine similarity [texts, labels] of two sets of vectors (normalized here, whatever the pooling)."""
    a = texts / np.maximum(np.linalg.norm(texts, axis=1, keepdims=True), 1e-12)
    b = labels / np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)


def similarity_scores(cosines: np.ndarray, scoring: Scoring, *, multi_label: bool) -> np.ndarray:
    """Scores [texts, labels] from cosines; independent per label for multi-label or one label."""
    if multi_label or cosines.shape[1] == 1:
        z = scoring.multi_scale * (cosines.astype(np.float64) - scoring.multi_bias)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return softmax(scoring.single_scale * cosines.astype(np.float64), axis=-1).astype(np.float32)
