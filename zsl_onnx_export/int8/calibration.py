"""Calibration pairs for the int8 accuracy guard: the built-in set or a user's file.

The built-in set (data/calibration.json, 17 kB) expands to 832 pairs: 8 languages x 16 texts
x 6 labels in zero-shot form, plus 64 English NLI pairs. A third of the pairs rank nodes by
sensitivity; the other two thirds (555 pairs) are held out and decide whether a candidate
passes. At 99% agreement the standard error on 555 pairs is about 0.4 points, so a candidate
at 98% fails reliably and one at 99.5% passes reliably; a larger set would mostly make
every export slower (each candidate runs all pairs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from zsl_onnx.internals import build_hypotheses

from .._errors import ExportError

__all__ = ["CalibrationSet", "MIN_PAIRS", "builtin_calibration", "load_calibration"]

MIN_PAIRS = 100  # below this, the held-out estimate's error is over a point at 99%
_RANKING_SHARE = 3  # a third of the pairs (a fixed random draw) ranks nodes; the rest are held out


@dataclass(frozen=True)
class CalibrationSet:
    premises: tuple[str, ...]
    hypotheses: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.premises) != len(self.hypotheses):
            raise ValueError("premises and hypotheses must have the same length")

    def __len__(self) -> int:
        return len(self.premises)

    @property
    def ranking(self) -> np.ndarray:
        """Indices of the pairs used to rank nodes by sensitivity."""
        return np.sort(self._order()[: len(self) // _RANKING_SHARE])

    @property
    def heldout(self) -> np.ndarray:
        """Indices of the pairs that decide pass/fail; never used to choose nodes."""
        return np.sort(self._order()[len(self) // _RANKING_SHARE :])

    def _order(self) -> np.ndarray:
        return np.random.default_rng(0).permutation(len(self))  # same split on every export

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "pairs": len(self),
            "ranking_pairs": len(self.ranking),
            "heldout_pairs": len(self.heldout),
        }


def builtin_calibration() -> CalibrationSet:
    data = json.loads(files("zsl_onnx_export").joinpath("data/calibration.json").read_text(encoding="utf-8"))
    premises: list[str] = []
    hypotheses: list[str] = []
    for group in data["zero_shot"]:  # text-major order, so both splits see every language
        label_hypotheses = build_hypotheses(group["labels"], group["template"])
        for text in group["texts"]:
            premises.extend([text] * len(label_hypotheses))
            hypotheses.extend(label_hypotheses)
    for group in data["nli"]:
        for premise, hypothesis in group["pairs"]:
            premises.append(premise)
            hypotheses.append(hypothesis)
    return CalibrationSet(tuple(premises), tuple(hypotheses), "built-in (8 languages, zero-shot + NLI)")


def load_calibration(
    path: str | Path, *, template: str, labels: Sequence[str] | None = None
) -> CalibrationSet:
    """A JSONL file of {"premise", "hypothesis"} objects, or a text file of premises + labels."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"Cannot read calibration file {path}: {exc}") from exc
    if path.suffix.lower() in (".jsonl", ".json"):
        if labels:
            raise ExportError("--calibration-labels applies to a text file of premises, not to JSONL pairs.")
        premises, hypotheses = _jsonl_pairs(path, lines)
    else:
        if not labels:
            raise ExportError(
                f"{path} is a text file of premises, so the guard needs labels to build hypotheses: "
                "pass --calibration-labels 'label one,label two' (or use JSONL premise/hypothesis pairs)."
            )
        texts = [line.strip() for line in lines if line.strip()]
        label_hypotheses = build_hypotheses(list(labels), template)
        premises = [t for t in texts for _ in label_hypotheses]
        hypotheses = [h for _ in texts for h in label_hypotheses]
    if len(premises) < MIN_PAIRS:
        raise ExportError(
            f"{path} gives {len(premises)} calibration pairs; the guard needs at least {MIN_PAIRS} "
            "for an agreement estimate within about a point. Add pairs, texts or labels."
        )
    return CalibrationSet(tuple(premises), tuple(hypotheses), str(path))


def _jsonl_pairs(path: Path, lines: list[str]) -> tuple[list[str], list[str]]:
    premises: list[str] = []
    hypotheses: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}:{number}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(record, dict):
            raise ExportError(f"{path}:{number}: expected an object with 'premise' and 'hypothesis'.")
        for key in ("premise", "hypothesis"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ExportError(f"{path}:{number}: {key!r} must be a non-empty string.")
        premises.append(record["premise"])
        hypotheses.append(record["hypothesis"])
    return premises, hypotheses
