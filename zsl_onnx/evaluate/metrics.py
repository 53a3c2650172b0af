"""Counts gathered in one pass, and the numbers computed from them.

Nothing here holds a record: a tally keeps, per top-score bucket, how many records were right
and wrong, plus the confusion counts, so memory is bounded by the number of labels. Scores
are bucketed by flooring to a grid of 1e-4 (scores are written with 6 decimals), so "score
>= t" is exact for every threshold on that grid, and records with equal scores always fall
in the same bucket: all in or all out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GRID",
    "Z95",
    "LabelTally",
    "MultiLabelTally",
    "SingleLabelTally",
    "bucket",
    "recommend",
    "threshold_table",
    "wilson",
]

GRID = 10_000  # buckets per unit score: thresholds are multiples of 1e-4
TABLE_STEP = 500  # the fixed rows of the table: 0.00, 0.05, ..., 1.00
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def bucket(score: float) -> int:
    """The grid step at or below ``score`` (the 1e-9 absorbs float error in ``0.95 * 10000``)."""
    return min(GRID, max(0, math.floor(score * GRID + 1e-9)))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class LabelTally:
    """Per bucket, how many records scored there and how many of them were right."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros((GRID + 1, 2), dtype=np.int64))

    def add(self, score: float, correct: bool) -> None:
        self.counts[bucket(score), int(correct)] += 1


def _cumulative(tally: LabelTally) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records at or above each bucket, the right ones among them, and which buckets occur."""
    per_bucket = tally.counts.sum(axis=1)
    covered = np.cumsum(per_bucket[::-1])[::-1]
    correct = np.cumsum(tally.counts[::-1, 1])[::-1]
    return covered, correct, np.flatnonzero(per_bucket)


def _row(b: int, covered: np.ndarray, correct: np.ndarray, n: int) -> dict[str, Any]:
    records, right = int(covered[b]), int(correct[b])
    low, high = wilson(right, records)
    return {
        "threshold": b / GRID,
        "records": records,
        "coverage": records / n if n else 0.0,
        "correct": right,
        "precision": right / records if records else None,
        "precision_low": low if records else None,
        "precision_high": high if records else None,
    }


def threshold_table(tally: LabelTally, n: int) -> list[dict[str, Any]]:
    """One row per threshold: the fixed grid 0.00..1.00 step 0.05 and every observed score bucket."""
    covered, correct, observed = _cumulative(tally)
    buckets = sorted(set(range(0, GRID + 1, TABLE_STEP)) | {int(b) for b in observed})
    return [_row(b, covered, correct, n) for b in buckets]


def recommend(tally: LabelTally, n: int, target: float) -> dict[str, Any] | None:
    """The row of the lowest observed threshold whose Wilson lower bound reaches ``target``."""
    covered, correct, observed = _cumulative(tally)
    for b in observed:
        records, right = int(covered[b]), int(correct[b])
        if wilson(right, records)[0] >= target:
            return _row(int(b), covered, correct, n)
    return None


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


@dataclass
class SingleLabelTally:
    """One label per record: the top label is right or wrong."""

    top: LabelTally = field(default_factory=LabelTally)
    confusion: Counter = field(default_factory=Counter)  # (gold, predicted) -> records
    candidates: set = field(default_factory=set)  # every label the predictions name
    n: int = 0

    def add(self, labels: tuple[str, ...], scores: tuple[float, ...], gold: tuple[str, ...]) -> None:
        self.candidates.update(labels)
        self.confusion[gold[0], labels[0]] += 1
        self.top.add(scores[0], labels[0] == gold[0])
        self.n += 1

    def gold_labels(self) -> set:
        return {g for g, _ in self.confusion}

    def per_label(self) -> dict[str, dict[str, Any]]:
        """Precision, recall, F1 and support of every label that was predicted or is gold."""
        out = {}
        for label in sorted({g for g, _ in self.confusion} | {p for _, p in self.confusion}):
            tp = self.confusion[label, label]
            predicted = sum(c for (_, p), c in self.confusion.items() if p == label)
            support = sum(c for (g, _), c in self.confusion.items() if g == label)
            precision, recall = _ratio(tp, predicted), _ratio(tp, support)
            out[label] = {"precision": precision, "recall": recall, "f1": f1(precision, recall),
                          "support": support, "predicted": predicted}
        return out

    def accuracy(self) -> float:
        return _ratio(sum(c for (g, p), c in self.confusion.items() if g == p), self.n)

    def confusion_matrix(self) -> dict[str, Any]:
        labels = sorted(self.per_label())
        return {"labels": labels, "rows": [[self.confusion[g, p] for p in labels] for g in labels]}


@dataclass
class MultiLabelTally:
    """Several labels per record: each label is decided on its own, at ``decision`` (0.5)."""

    decision: float = 0.5
    top: LabelTally = field(default_factory=LabelTally)
    labels: dict = field(default_factory=dict)  # label -> LabelTally of its score, right = label is gold
    counts: dict = field(default_factory=dict)  # label -> [tp, fp, fn, tn] at the decision threshold
    gold_seen: set = field(default_factory=set)
    exact: int = 0
    n: int = 0

    def add(self, labels: tuple[str, ...], scores: tuple[float, ...], gold: tuple[str, ...]) -> None:
        wanted = set(gold)
        self.gold_seen.update(wanted)
        self.top.add(scores[0], labels[0] in wanted)
        chosen = set()
        for label, score in zip(labels, scores):
            self.labels.setdefault(label, LabelTally()).add(score, label in wanted)
            cell = self.counts.setdefault(label, [0, 0, 0, 0])
            above = score >= self.decision
            cell[(0 if label in wanted else 1) if above else (2 if label in wanted else 3)] += 1
            if above:
                chosen.add(label)
        self.exact += chosen == wanted
        self.n += 1

    @property
    def candidates(self) -> set:
        return set(self.labels)

    def gold_labels(self) -> set:
        return self.gold_seen

    def per_label(self) -> dict[str, dict[str, Any]]:
        out = {}
        for label in sorted(self.counts):
            tp, fp, fn, _ = self.counts[label]
            precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
            out[label] = {"precision": precision, "recall": recall, "f1": f1(precision, recall),
                          "support": tp + fn, "predicted": tp + fp}
        return out

    def accuracy(self) -> float:
        return _ratio(self.exact, self.n)

    def confusion_matrix(self) -> dict[str, Any]:
        return {label: dict(zip(("tp", "fp", "fn", "tn"), cell)) for label, cell in sorted(self.counts.items())}
