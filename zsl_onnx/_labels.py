"""Which logit means "entailment" and which one the pipeline contrasts it with.

Shared by the runtime and the exporter so that both read config.json the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import NoEntailmentLabelError


@dataclass(frozen=True)
class LabelSpec:
    """The model's NLI classes and the two indices zero-shot scoring needs."""

    names: tuple[str, ...]
    entailment: int
    contradiction: int

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "entailment_index": self.entailment,
            "contradiction_index": self.contradiction,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelSpec:
        return cls(
            names=tuple(data["names"]),
            entailment=int(data["entailment_index"]),
            contradiction=int(data["contradiction_index"]),
        )


def resolve_labels(config: Mapping[str, Any]) -> LabelSpec:
    """Find the entailment id the way transformers' zero-shot pipeline does.

    The pipeline takes the first label in ``label2id`` whose name starts with "entail"
    (case-insensitive), and contrasts it with index 0, or with the last index when
    entailment itself is 0. We copy that rule exactly, for parity, instead of looking
    for a label called "contradiction".
    """
    label2id = _label2id(config)
    names = _names(config, label2id)
    entailment = next(
        (int(idx) for name, idx in label2id.items() if name.lower().startswith("entail")), None
    )
    if entailment is None:
        raise NoEntailmentLabelError(
            f"The model's config has no entailment label: its labels are {list(names)}. "
            "Zero-shot classification needs an NLI model with a label whose name starts with "
            "'entail' (e.g. 'entailment'); fix label2id/id2label in config.json or pick an NLI model."
        )
    if len(names) < 2:
        raise NoEntailmentLabelError(
            f"The model has {len(names)} output class(es) {list(names)}; an NLI model needs at "
            "least two (entailment and not_entailment or contradiction)."
        )
    contradiction = len(names) - 1 if entailment == 0 else 0
    return LabelSpec(names=names, entailment=entailment, contradiction=contradiction)


def _label2id(config: Mapping[str, Any]) -> dict[str, int]:
    label2id = config.get("label2id")
    if label2id:
        return {str(name): int(idx) for name, idx in label2id.items()}
    id2label = config.get("id2label") or {}
    return {str(name): int(idx) for idx, name in id2label.items()}


def _names(config: Mapping[str, Any], label2id: Mapping[str, int]) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if id2label:
        by_id = {int(idx): str(name) for idx, name in id2label.items()}
    else:
        by_id = {idx: name for name, idx in label2id.items()}
    return tuple(by_id[i] for i in sorted(by_id))
