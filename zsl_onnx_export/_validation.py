"""PyTorch vs ONNX Runtime on built-in NLI pairs: the check that makes an export trustworthy.

The pairs vary in length (one far past any max_length, to exercise truncation), language and
script, because tokenizer and position bugs tend to show only on long or non-Latin input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_LONG = (
    "The city council met on Tuesday evening to discuss the new budget, which includes funding "
    "for road repairs, a new library branch, and expanded bus service to the northern suburbs. "
) * 40

VALIDATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("A man is playing a guitar on stage.", "This example is music."),
    ("A man is playing a guitar on stage.", "This example is sports."),
    ("The striker scored twice in the final minutes.", "This example is about football."),
    ("Stocks fell sharply after the central bank raised interest rates.", "This example is economy."),
    ("Nobody is riding the horse.", "A person is riding a horse."),
    ("Two dogs are running through a field.", "There are animals outdoors."),
    ("I loved this film, the acting was wonderful!", "This example is positive."),
    ("Hi", "This example is a greeting."),
    (_LONG, "This example is politics."),
    (_LONG, "This example is about cooking pasta at home with friends and family."),
    ("El gobierno anunció nuevas medidas económicas para reducir la inflación.", "Este ejemplo es economía."),
    ("La selección ganó el partido en el último minuto.", "Este ejemplo es deportes."),
    ("Москва — столица России, крупнейший город страны.", "Этот пример о географии."),
    ("東京は日本の首都であり、世界最大の都市圏の一つです。", "この例は地理についてです。"),
    ("الطقس اليوم مشمس وحار في معظم المناطق.", "هذا المثال عن الطقس."),
    ("Der Zug nach Berlin hat heute zwei Stunden Verspätung. 🚆😡", "This example is travel."),
)


@dataclass(frozen=True)
class Comparison:
    """How closely a candidate's logits follow the reference's on the same pairs."""

    pairs: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "max_abs_logit_diff": round(self.max_abs_diff, 8),
            "mean_abs_logit_diff": round(self.mean_abs_diff, 8),
            "top1_agreement": round(self.top1_agreement, 6),
        }


def compare(reference: np.ndarray, candidate: np.ndarray) -> Comparison:
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = np.argmax(reference, axis=-1) == np.argmax(candidate, axis=-1)
    return Comparison(
        pairs=int(reference.shape[0]),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        top1_agreement=float(agree.mean()),
    )


def torch_logits(
    model: Any,
    tokenizer: Any,
    premises: Sequence[str],
    hypotheses: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Reference logits, tokenized by transformers the way the zero-shot pipeline does it.

    Pairs run in batches of similar length (longest characters last), so that the two
    validation pairs far past max_length do not pad every other pair to max_length: on an 8k
    model that padding made validation the longest step of the export."""
    import torch

    lengths = np.array([len(p) + len(h) for p, h in zip(premises, hypotheses)])
    order = np.argsort(lengths, kind="stable")
    chunks = []
    with torch.inference_mode():
        for rows in _similar_lengths(order, lengths, batch_size):
            encoded = tokenizer(
                [premises[i] for i in rows],
                [hypotheses[i] for i in rows],
                padding=True,
                truncation="only_first",
                max_length=max_length,
                return_tensors="pt",
            )
            inputs = {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}
            chunks.append(model(**inputs).logits.float().numpy())
    stacked = np.concatenate(chunks)
    logits = np.empty_like(stacked)
    logits[order] = stacked
    return logits


def _similar_lengths(order: np.ndarray, lengths: np.ndarray, batch_size: int,
                     budget: int = 16 * 512) -> list[np.ndarray]:
    """``order`` (ascending length) cut into batches of at most ``batch_size`` pairs and
    ``budget`` padded characters (rows x the longest)."""
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < min(start + batch_size, len(order)) and (stop + 1 - start) * lengths[order[stop]] <= budget:
            stop += 1
        batches.append(order[start:stop])
        start = stop
    return batches
