"""int8 candidates: which MatMuls go per-row int8, and how their weights are chosen.

Model-agnostic: :func:`quantize_model` takes any ONNX graph, the names of the MatMuls to
quantize and the activation statistics of that graph (``_activations``), so cross-encoders
and embedding models share it. :class:`RowQuantizer` binds one graph and its statistics for
the accuracy guard, which builds many candidates of the same graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._activations import ActivationStats
from ._rowquant import RowQuantWeights, quantize_weights, rowquant, weight_matmuls
from ._weight_rounding import gptq_weights, smoothing_factors

__all__ = ["BASE_CANDIDATES", "QuantConfig", "RowQuantizer", "quantize_model", "save_model"]


@dataclass(frozen=True)
class QuantConfig:
    """How a candidate picks its int8 weights, under a short name for tables."""

    name: str
    smooth_alpha: float | None = 0.5  # SmoothQuant migration strength; None: no smoothing
    gptq: bool = True  # GPTQ rounding instead of round-to-nearest
    nodes_to_exclude: tuple[str, ...] = field(default=())

    def excluding(self, nodes: Sequence[str]) -> QuantConfig:
        return replace(self, name=f"{self.name} -{len(nodes)} fp32", nodes_to_exclude=tuple(nodes))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes_to_exclude"] = list(self.nodes_to_exclude)
        data["scheme"] = "per-row activations (uint8, zero point 128), per-column weights in [-64, 64]"
        return data


# Tried in this order before any MatMul is kept in fp32. Every candidate is per-row int8 with
# 7-bit-safe weights (see _rowquant), so any candidate the guard accepts is batch-independent
# and gives the same integers on AVX2, AVX512-VNNI and AMX CPUs.
BASE_CANDIDATES: tuple[QuantConfig, ...] = (QuantConfig("per-row int8, smoothed, GPTQ"),)


def quantize_model(
    model: Any,
    nodes: Sequence[str],
    stats: Mapping[str, ActivationStats],
    config: QuantConfig,
    *,
    cache: dict[tuple[str, float | None, bool], RowQuantWeights] | None = None,
) -> Any:
    """``model`` (onnx.ModelProto) with ``nodes`` (weight MatMuls) in per-row int8.

    ``stats`` holds the statistics of every activation those MatMuls read; smoothing factors
    are computed over all weight MatMuls reading an activation, so a MatMul's int8 weights do
    not depend on which of its neighbours stay fp32 (``cache`` reuses them across candidates).
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    readers: dict[str, list[str]] = {}
    for name in weight_matmuls(model):
        readers.setdefault(by_name[name].input[0], []).append(name)
    cache = {} if cache is None else cache
    specs: dict[str, RowQuantWeights] = {}
    for name in nodes:
        key = (name, config.smooth_alpha, config.gptq)
        if key not in cache:
            activation = by_name[name].input[0]
            weight = numpy_helper.to_array(inits[by_name[name].input[1]])
            smooth = None
            if config.smooth_alpha is not None:
                group = [numpy_helper.to_array(inits[by_name[n].input[1]]) for n in readers[activation]]
                smooth = smoothing_factors(stats[activation].channel_max, group, config.smooth_alpha)
            if config.gptq:
                cache[key] = gptq_weights(weight, stats[activation].gram, smooth)
            else:
                cache[key] = quantize_weights(weight, smooth)
        specs[name] = cache[key]
    return rowquant(model, specs)


class RowQuantizer:
    """One fp32 graph and its activation statistics; writes int8 candidates of it."""

    def __init__(self, model: Any, stats: Mapping[str, ActivationStats]) -> None:
        self._model = model
        self._stats = stats
        self._cache: dict[tuple[str, float | None, bool], RowQuantWeights] = {}
        self.nodes = weight_matmuls(model)

    def build(self, config: QuantConfig, only_nodes: Sequence[str] | None = None) -> Any:
        chosen = self.nodes if only_nodes is None else list(only_nodes)
        skip = set(config.nodes_to_exclude)
        return quantize_model(
            self._model, [n for n in chosen if n not in skip], self._stats, config, cache=self._cache
        )

    def write(self, config: QuantConfig, target: Path, *, external_data: bool, only_nodes: Sequence[str] | None = None) -> None:
        save_model(self.build(config, only_nodes), target, external_data=external_data)


def save_model(model: Any, target: Path, *, external_data: bool) -> None:
    import onnx

    if external_data:
        onnx.save(model, str(target), save_as_external_data=True, location=target.name + "_data")
    else:
        onnx.save(model, str(target))


def int8_weight_bytes(model: Any) -> int:
    """Bytes of int8 initializers (for size tables)."""
    from onnx import TensorProto

    return sum(int(np.prod(i.dims)) for i in model.graph.initializer if i.data_type == TensorProto.INT8)
