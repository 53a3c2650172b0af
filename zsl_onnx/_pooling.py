"""Embedding stage: token vectors -> one sentence vector, as sentence-transformers pools them.

The ONNX file of an embedding bundle stops at the transformer's ``last_hidden_state``; the
pooling and the optional L2 normalization run here in numpy, configured from the manifest.
Doing it outside the graph keeps one exported body valid for every pooling setting and keeps
the rule readable: each mode below mirrors ``sentence_transformers.models.Pooling.forward``
(and ``Normalize``: ``x / max(||x||, 1e-12)``), including its masking of prompt tokens when
``include_prompt`` is false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._exceptions import BundleError

__all__ = ["MODES", "PoolingConfig", "modes_from_sentence_transformers", "normalize", "pool"]

# The pooling modes of sentence-transformers, in the order it concatenates them.
MODES = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")
_NORM_EPS = 1e-12  # torch.nn.functional.normalize's default eps
_MASK_EPS = 1e-9  # Pooling clamps token counts to this


@dataclass(frozen=True)
class PoolingConfig:
    """Which pooling modes to concatenate, and whether to L2-normalize the result."""

    modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    include_prompt: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if not self.modes or unknown:
            raise BundleError(
                f"Pooling modes {list(self.modes)} are not usable: pick one or more of {list(MODES)}. "
                "Re-export the bundle with zsl-export."
            )

    def to_json(self) -> dict[str, Any]:
        return {"modes": list(self.modes), "normalize": self.normalize, "include_prompt": self.include_prompt}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PoolingConfig:
        if not isinstance(data, Mapping) or not isinstance(data.get("modes"), list):
            raise BundleError("The manifest's embedding.pooling entry is malformed; re-export the bundle.")
        flags = {"normalize": data.get("normalize", False), "include_prompt": data.get("include_prompt", True)}
        for name, value in flags.items():
            if not isinstance(value, bool):  # bool("false") is True: a string would flip the setting
                raise BundleError(
                    f"The manifest's embedding.pooling.{name} is {value!r}, not true or false; re-export the bundle."
                )
        return cls(modes=tuple(data["modes"]), **flags)


def pool(
    token_embeddings: np.ndarray, attention_mask: np.ndarray, config: PoolingConfig, *, prompt_length: int = 0
) -> np.ndarray:
    """Sentence vectors [rows, dim x modes] from token vectors [rows, tokens, dim]."""
    hidden = np.asarray(token_embeddings, dtype=np.float32)
    mask = np.asarray(attention_mask, dtype=np.float32).copy()
    if not config.include_prompt and prompt_length > 0:
        mask[:, :prompt_length] = 0.0
    parts = [_MODE_FUNCTIONS[mode](hidden, mask) for mode in config.modes]
    vectors = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if config.normalize:
        vectors = normalize(vectors)
    return vectors.astype(np.float32, copy=False)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 length (rows of zeros stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, _NORM_EPS)


def _cls(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return hidden[:, 0]


def _max(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[:, :, None] == 0, np.float32(-1e9), hidden).max(axis=1)


def _masked_sum(hidden: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    summed = np.einsum("rtd,rt->rd", hidden, weights, dtype=np.float32)
    count = np.maximum(weights.sum(axis=1, keepdims=True), _MASK_EPS)
    return summed, count


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    summed, count = _masked_sum(hidden, mask)
    return summed / count


def _mean_sqrt_len(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    summed, count = _masked_sum(hidden, mask)
    return summed / np.sqrt(count)


def _weightedmean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    positions = np.arange(1, hidden.shape[1] + 1, dtype=np.float32)
    summed, count = _masked_sum(hidden, mask * positions[None, :])
    return summed / count


def _lasttoken(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # The last position whose mask is 1 (position 0 when a row has none), as Pooling does.
    width = mask.shape[1]
    flipped = mask[:, ::-1]
    last = width - 1 - flipped.argmax(axis=1)
    last = np.where(flipped.max(axis=1) == 0, 0, last)
    rows = np.arange(hidden.shape[0])
    return hidden[rows, last] * mask[rows, last][:, None]


_MODE_FUNCTIONS = {
    "cls": _cls,
    "max": _max,
    "mean": _mean,
    "mean_sqrt_len": _mean_sqrt_len,
    "weightedmean": _weightedmean,
    "lasttoken": _lasttoken,
}


def modes_from_sentence_transformers(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The modes a ``1_Pooling/config.json`` turns on (old boolean keys or the newer string)."""
    if isinstance(config.get("pooling_mode"), str):
        named = config["pooling_mode"].lower()
        aliases = {"mean_tokens": "mean", "max_tokens": "max", "cls_token": "cls", "mean_sqrt_len_tokens": "mean_sqrt_len"}
        return tuple(aliases.get(part, part) for part in named.split("+"))
    flags: Sequence[tuple[str, str]] = (
        ("cls", "pooling_mode_cls_token"),
        ("max", "pooling_mode_max_tokens"),
        ("mean", "pooling_mode_mean_tokens"),
        ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens"),
        ("weightedmean", "pooling_mode_weightedmean_tokens"),
        ("lasttoken", "pooling_mode_lasttoken"),
    )
    return tuple(mode for mode, key in flags if config.get(key, False))
