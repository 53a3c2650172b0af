"""Stage 5: NLI logits -> label scores and the pipeline's result dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._labels import LabelSpec


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: subtracting the max keeps exp() from overflowing."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def label_scores(logits: np.ndarray, labels: LabelSpec, *, multi_label: bool) -> np.ndarray:
    """Scores [texts, candidate labels] from logits [texts, candidate labels, classes].

    Single-label: softmax of the entailment logits across candidate labels (scores sum to 1).
    Multi-label, or a single candidate: per label, softmax of entailment vs contradiction.
    """
    if multi_label or logits.shape[1] == 1:
        pair = logits[..., [labels.contradiction, labels.entailment]]
        return softmax(pair, axis=-1)[..., 1]
    return softmax(logits[..., labels.entailment], axis=-1)


def ranked_result(sequence: str, candidate_labels: Sequence[str], scores: np.ndarray) -> dict[str, Any]:
    """The pipeline's dict: labels sorted by descending score (same tie order as the pipeline)."""
    order = list(reversed(scores.argsort()))
    return {
        "sequence": sequence,
        "labels": [candidate_labels[i] for i in order],
        "scores": scores[order].tolist(),
    }
