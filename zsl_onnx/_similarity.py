"""Embedding stage 5: cosine similarities -> label scores, with a calibrated scale.

Raw cosines of a sentence-embedding model crowd into a narrow band (all-MiniLM-L6-v2: about
0.0-0.6), so they are not probabilities. Two calibrated maps, fitted at export time on a
labelled calibration set and stored in the manifest, make them usable:

- single-label: ``softmax(scale * cos)`` over the candidate labels (scores sum to 1), the
  form the model family was trained with (a softmax over in-batch cosines, scale ~20);
- multi-label, or a single candidate: ``sigmoid(scale * (cos - bias))`` per label, a logistic
  fit of "this label applies", so a threshold of 0.5 means "more likely than not" on data
  like the calibration set.
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
    multi_bias: float = 0.3

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
