"""The evaluation: join predictions to gold labels in one pass, tally, and summarise as a dict.

That dict is what ``--json`` prints and what the text and the plot are drawn from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EvaluationError
from .gold import GoldSet
from .metrics import MultiLabelTally, SingleLabelTally, recommend, threshold_table
from .predictions import Options, Prediction, read_predictions

__all__ = ["Joined", "evaluate", "join", "summarize", "tally"]

Tally = SingleLabelTally | MultiLabelTally


@dataclass
class Joined:
    """What the join saw besides the evaluated records."""

    predictions: int = 0
    without_gold: int = 0
    gold: int | None = None
    gold_skipped: int | None = None
    gold_without_prediction: int | None = None
    candidates: set[str] = field(default_factory=set)  # every label any prediction names


def evaluate(path: Path, gold: GoldSet | None, options: Options, target: float) -> dict[str, Any]:
    """Everything ``zsl-evaluate`` reports, from one pass over the predictions."""
    joined = Joined()
    counts = tally(join(read_predictions(path, options), gold, options, joined), options.multi_label)
    if counts.n == 0:
        raise EvaluationError(_nothing_joined(gold, options, joined))
    unknown = sorted(counts.gold_labels() - joined.candidates)
    if unknown:
        raise EvaluationError(
            f"{len(unknown)} gold label(s) are not among the predicted labels: "
            + ", ".join(repr(label[:60]) for label in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        )
    return summarize(counts, target, joined, options.multi_label)


def join(predictions: Iterator[Prediction], gold: GoldSet | None, options: Options, joined: Joined
         ) -> Iterator[tuple[Prediction, tuple[str, ...]]]:
    """Each prediction with its gold label(s); ids are remembered only for records that have gold."""
    seen: set[str] = set()
    if gold is not None:
        joined.gold, joined.gold_skipped = len(gold.labels), gold.skipped
    for prediction in predictions:
        joined.predictions += 1
        joined.candidates.update(prediction.labels)
        labels = prediction.gold if gold is None else _gold_by_id(prediction, gold, options)
        if labels is None:
            joined.without_gold += 1
            continue
        if prediction.key is not None:
            if prediction.key in seen and gold is not None:
                raise EvaluationError(f"predictions: the id {prediction.key[:80]!r} occurs twice ({prediction.where})")
            if gold is not None:
                seen.add(prediction.key)
        yield prediction, labels
    if gold is not None:
        joined.gold_without_prediction = len(gold.labels) - len(seen)


def _gold_by_id(prediction: Prediction, gold: GoldSet, options: Options) -> tuple[str, ...] | None:
    if prediction.key is None:
        raise EvaluationError(
            f"predictions: {prediction.where} has no id field {options.id_field!r} to join on (name it with --id-field)"
        )
    return gold.labels.get(prediction.key)


def tally(pairs: Iterator[tuple[Prediction, tuple[str, ...]]], multi_label: bool) -> Tally:
    counts: Tally = MultiLabelTally() if multi_label else SingleLabelTally()
    label_set: set[str] | None = None
    for prediction, gold in pairs:
        if multi_label:
            label_set = label_set or set(prediction.labels)
            if set(prediction.labels) != label_set:
                raise EvaluationError(f"predictions: {prediction.where} scores other labels than the first record")
        elif len(gold) != 1:
            raise EvaluationError(
                f"predictions: {prediction.where} has {len(gold)} gold labels; pass --multi-label for multi-label gold"
            )
        counts.add(prediction.labels, prediction.scores, gold)
    return counts


def _nothing_joined(gold: GoldSet | None, options: Options, joined: Joined) -> str:
    if joined.predictions == 0:
        return "the predictions file holds no records"
    if gold is None:
        return f"no prediction has a gold label in the field {options.gold_field!r}"
    return (f"no id in common between the {joined.predictions} predictions and the {len(gold.labels)} "
            f"gold records (ids from {options.id_field!r}; name another with --id-field)")


def summarize(counts: Tally, target: float, joined: Joined, multi_label: bool) -> dict[str, Any]:
    """The JSON object: headline numbers, per-label metrics, confusion, the threshold tables."""
    per_label = counts.per_label()
    scored = [m["f1"] for m in per_label.values() if m["support"] or m["predicted"]]
    best = recommend(counts.top, counts.n, target)
    out: dict[str, Any] = {
        "n": counts.n,
        "multi_label": multi_label,
        "accuracy": counts.accuracy(),
        "macro_f1": sum(scored) / len(scored) if scored else 0.0,
        "target_precision": target,
        "recommended_threshold": best["threshold"] if best else None,
        "coverage": best["coverage"] if best else None,
        "precision": best["precision"] if best else None,
        "precision_low": best["precision_low"] if best else None,
        "precision_high": best["precision_high"] if best else None,
        "per_label": per_label,
        "confusion_matrix": counts.confusion_matrix(),
        "thresholds": threshold_table(counts.top, counts.n),
        "records": {name: value for name, value in vars(joined).items() if name != "candidates"},
    }
    if isinstance(counts, MultiLabelTally):
        out["decision_threshold"] = counts.decision
        out["per_label_thresholds"] = {
            label: {"recommended": recommend(t, counts.n, target), "thresholds": threshold_table(t, counts.n)}
            for label, t in sorted(counts.labels.items())
        }
    return out
