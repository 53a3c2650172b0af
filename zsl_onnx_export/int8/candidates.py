"""int8 candidates: which MatMuls go per-row int8, and how their weights are chosen.

Model-agnostic: :func:`quantize_model` takes any ONNX graph, the names of the MatMuls to
quantize and the activation statistics of that graph (``stats``), so cross-encoders
and embedding models share it. :class:`RowQuantizer` binds one graph and its statistics for
the accuracy guard, which builds many candidates of the same graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .rowquant import rowquant, weight_matmuls
from .stats import ActivationStats
from .weight_rounding import gptq_weights, smoothing_factors
from .weights import ACTIVATION_LEVEL, RowQuantWeights, hadamard_block, quantize_weights, rotate_rows

OUTLIER_CHANNELS = 2  # smoothed channels of a chosen static activation capped at the third largest

__all__ = [
    "BASE_CANDIDATES",
    "EMBEDDING_CANDIDATES",
    "QuantConfig",
    "RowQuantizer",
    "capped_smoothing",
    "needs_external_data",
    "quantize_model",
    "save_model",
    "static_scale",
]


@dataclass(frozen=True)
class QuantConfig:
    """How a candidate picks its int8 weights, under a short name for tables."""

    name: str
    smooth_alpha: float | None = 0.5  # SmoothQuant migration strength; None: no smoothing
    gptq: bool = True  # GPTQ rounding instead of round-to-nearest
    unsigned: bool = True  # non-negative activations (GELU outputs) use all 256 uint8 levels
    rotation: int = 0  # Hadamard block size limit for rotated activations (0: none; see weights)
    paired_weights: bool = False  # 8-bit weights bounded per pair of rows instead of [-64, 64]
    # Activations read by several weight MatMuls (attention's query/key/value input) use one
    # calibrated scale instead of per-row scales: fewer passes over them and their outputs.
    static_shared: bool = False
    # Further activations (by name) with one calibrated scale. A LayerNorm output's rows share a
    # range, unlike attention outputs or GELU outputs; the guard fills this with the LayerNorm
    # outputs whose calibrated scale barely moves the logits (``select_static``).
    static_inputs: tuple[str, ...] = ()
    select_static: bool = False
    nodes_to_exclude: tuple[str, ...] = field(default=())

    def excluding(self, nodes: Sequence[str]) -> QuantConfig:
        return replace(self, name=f"{self.name} -{len(nodes)} fp32", nodes_to_exclude=tuple(nodes))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes_to_exclude"] = list(self.nodes_to_exclude)
        data["static_inputs"] = list(self.static_inputs)
        weights = "in [-127, 127], pairs of rows within 128" if self.paired_weights else "in [-64, 64]"
        rotated = f", Hadamard-rotated in blocks of up to {self.rotation}" if self.rotation else ""
        shared = ", one calibrated scale where several MatMuls read them" if self.static_shared else ""
        if self.static_inputs:
            shared += f" and for {len(self.static_inputs)} more LayerNorm outputs"
        data["scheme"] = f"per-row activations{shared} (uint8, zero point 128{rotated}), per-column weights {weights}"
        return data


# Tried in this order before any MatMul is kept in fp32; the last one is where the guard's
# back-off starts. Every candidate quantizes each row on its own (per-row or calibrated scales)
# with AVX2-safe pair-bounded weights (see weights), so any candidate the guard accepts is
# batch-independent and has exact integer products on AVX2, AVX512-VNNI and AMX CPUs. The
# first is the fastest: one calibrated scale for the attention input and for the LayerNorm
# outputs the guard picks (the FFN input, in BERT-like models); the second keeps it for the
# attention input only; the third computes every scale from its own row, so no input beyond
# the calibration range saturates.
BASE_CANDIDATES: tuple[QuantConfig, ...] = (
    QuantConfig("int8, smoothed, GPTQ, paired weights, static LayerNorm outputs", static_shared=True,
                select_static=True, paired_weights=True),
    QuantConfig("int8, smoothed, GPTQ, paired weights, static shared inputs", static_shared=True, paired_weights=True),
    QuantConfig("per-row int8, smoothed, GPTQ, paired weights", paired_weights=True),
)
# Embedding bundles: mean-pooled vectors compared across labels are more sensitive to int8
# noise than a cross-encoder's logits, so their activations are rotated and their weights get
# the pair-bounded 8-bit range (both in weights), at the cost of one small MatMul per activation.
EMBEDDING_CANDIDATES: tuple[QuantConfig, ...] = (
    QuantConfig("per-row int8, rotated, smoothed, GPTQ, paired weights", rotation=32, paired_weights=True),
)
def quantize_model(
    model: Any,
    nodes: Sequence[str],
    stats: Mapping[str, ActivationStats],
    config: QuantConfig,
    *,
    cache: dict[tuple[Any, ...], RowQuantWeights] | None = None,
) -> Any:
    """``model`` (onnx.ModelProto) with ``nodes`` (weight MatMuls) in per-row int8.

    ``stats`` holds the statistics of every activation those MatMuls read; smoothing factors
    are computed over all weight MatMuls reading an activation, so a MatMul's int8 weights do
    not depend on which of its neighbours stay fp32 (``cache`` reuses them across candidates).
    """
    cache = {} if cache is None else cache
    specs = {name: _weights(model, name, stats, config, cache) for name in nodes}
    return rowquant(model, specs)


def _weights(
    model: Any,
    name: str,
    stats: Mapping[str, ActivationStats],
    config: QuantConfig,
    cache: dict[tuple[Any, ...], RowQuantWeights],
) -> RowQuantWeights:
    """One MatMul's int8 weights under ``config`` (computed once per cache: GPTQ on a large
    layer takes seconds, so candidates that differ only in a calibrated scale share it)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    activation = by_name[name].input[0]
    channels = int(inits[by_name[name].input[1]].dims[0])
    block = hadamard_block(channels, config.rotation) if config.rotation else 0
    readers = [n for n in weight_matmuls(model) if by_name[n].input[0] == activation]
    shared = config.static_shared and len(readers) > 1
    chosen = activation in config.static_inputs and not shared
    static = (shared or chosen) and bool(stats) and not block
    capped = static and chosen
    offset = stats[activation].offset() if stats and config.unsigned and not block and not static else None
    key = (name, config.smooth_alpha, config.gptq, config.rotation, config.paired_weights, capped, offset)
    if key not in cache:
        cache[key] = _rounded_weights(numpy_helper.to_array(inits[by_name[name].input[1]]),
                                      [numpy_helper.to_array(inits[by_name[n].input[1]]) for n in readers],
                                      stats.get(activation), config, block=block, capped=capped, offset=offset)
    spec = cache[key]
    if static:
        spec = replace(spec, static_scale=static_scale(stats[activation].channel_max, spec.smooth))
    return spec


def _rounded_weights(weight: np.ndarray, group: Sequence[np.ndarray], stats: ActivationStats | None,
                     config: QuantConfig, *, block: int, capped: bool, offset: float | None) -> RowQuantWeights:
    """Smoothing factors over the activation's ``group`` of readers, then rotation, GPTQ or
    round to nearest, and the offset's correction."""
    smooth = peak = gram = None
    if stats is not None:
        peak, gram = stats.channel_max, stats.gram
        if offset is not None:
            peak, gram = stats.shifted(offset)
    if config.smooth_alpha is not None:
        smooth = smoothing_factors(peak, group, config.smooth_alpha)
        if capped:
            smooth = capped_smoothing(peak, smooth)
    if block:
        spec = _rotated_weights(weight, gram, smooth, block, config)
    elif config.gptq:
        spec = gptq_weights(weight, gram, smooth, paired=config.paired_weights)
    else:
        spec = quantize_weights(weight, smooth, paired=config.paired_weights)
    if offset is not None:
        spec = replace(spec, offset=offset, offset_output=(offset * weight.astype(np.float64).sum(axis=0)).astype(np.float32))
    return spec


def capped_smoothing(channel_max: np.ndarray, smooth: np.ndarray, keep: int = OUTLIER_CHANNELS) -> np.ndarray:
    """Raise the smoothing factors of the ``keep`` largest smoothed channels until none exceeds
    the next one. A post-LN transformer's LayerNorm output keeps one or two channels several
    times larger than the rest after smoothing; a calibrated scale set by them would leave every
    other channel a fraction of the levels, so their range moves into the weight rows instead."""
    peak = np.asarray(channel_max, dtype=np.float64)
    factors = np.asarray(smooth, dtype=np.float64)
    smoothed = np.sort(peak / factors)[::-1]
    if len(smoothed) <= keep or smoothed[keep] <= 0:
        return np.asarray(smooth, dtype=np.float32)
    return np.maximum(factors, peak / smoothed[keep]).astype(np.float32)


def static_scale(channel_max: np.ndarray, smooth: np.ndarray | None) -> float:
    """One activation scale for every row: the calibration's largest smoothed |x| maps to 127;
    larger inputs saturate (headroom would cost every row resolution)."""
    peak = np.asarray(channel_max, dtype=np.float64)
    if smooth is not None:
        peak = peak / np.asarray(smooth, dtype=np.float64)
    return float(max(peak.max(initial=0.0) / ACTIVATION_LEVEL, float(np.finfo(np.float32).tiny)))


def _rotated_weights(
    weight: np.ndarray, gram: np.ndarray | None, smooth: np.ndarray | None, block: int, config: QuantConfig
) -> RowQuantWeights:
    """int8 weights R (s W) for activations (x / s) R: the rows rotated like the activations,
    and GPTQ on the Gram matrix of the rotated activations, R (G / s s^T) R."""
    s = np.ones(len(weight)) if smooth is None else np.asarray(smooth, dtype=np.float64)
    rotated = rotate_rows(np.asarray(weight, dtype=np.float64) * s[:, None], block)
    if config.gptq and gram is not None:
        rotated_gram = rotate_rows(rotate_rows(np.asarray(gram, dtype=np.float64) / np.outer(s, s), block).T, block)
        spec = gptq_weights(rotated, rotated_gram, paired=config.paired_weights)
    else:
        spec = quantize_weights(rotated, paired=config.paired_weights)
    return replace(spec, smooth=smooth, rotation=block)


class RowQuantizer:
    """One fp32 graph and its activation statistics; writes int8 candidates of it."""

    def __init__(self, model: Any, stats: Mapping[str, ActivationStats]) -> None:
        self._model = model
        self._stats = stats
        self._cache: dict[tuple[Any, ...], RowQuantWeights] = {}
        self.nodes = weight_matmuls(model)

    @property
    def model(self) -> Any:
        """The fp32 graph (onnx.ModelProto) the candidates are built from."""
        return self._model

    def build(self, config: QuantConfig, only_nodes: Sequence[str] | None = None) -> Any:
        chosen = self.nodes if only_nodes is None else list(only_nodes)
        skip = set(config.nodes_to_exclude)
        return quantize_model(
            self._model, [n for n in chosen if n not in skip], self._stats, config, cache=self._cache
        )

    def layer_norm_inputs(self) -> list[str]:
        """Activations that a LayerNormalization writes and one weight MatMul reads, signed: the
        ones ``QuantConfig.static_inputs`` may name (several readers are ``static_shared``'s)."""
        graph = self._model.graph
        producer = {output: node.op_type for node in graph.node for output in node.output}
        by_name = {n.name: n for n in graph.node}
        read = [by_name[n].input[0] for n in self.nodes]
        return [
            a for a in dict.fromkeys(read)
            if read.count(a) == 1 and producer.get(a) == "LayerNormalization"
            and a in self._stats and self._stats[a].offset() is None
        ]

    def weight_count(self) -> int:
        """How many weights the weight MatMuls hold together."""
        inits = {i.name: i for i in self._model.graph.initializer}
        by_name = {n.name: n for n in self._model.graph.node}
        return sum(int(np.prod(inits[by_name[n].input[1]].dims)) for n in self.nodes)

    def weights(self, config: QuantConfig, node: str) -> RowQuantWeights:
        """The int8 weights ``node`` gets under ``config``."""
        return _weights(self._model, node, self._stats, config, self._cache)

    def output_errors(self, node: str) -> dict[str, float]:
        """Squared output error on the calibration rows, sum of |x (W - W_int8)|^2, of round to
        nearest and of GPTQ (no smoothing): how much GPTQ's rounding buys per MatMul."""
        from onnx import numpy_helper

        by_name = {n.name: n for n in self._model.graph.node}
        inits = {i.name: i for i in self._model.graph.initializer}
        weight = numpy_helper.to_array(inits[by_name[node].input[1]]).astype(np.float64)
        gram = self._stats[by_name[node].input[0]].gram
        errors = {}
        for label, gptq in (("round_to_nearest", False), ("gptq", True)):
            delta = weight - self.weights(QuantConfig(label, smooth_alpha=None, gptq=gptq), node).dequantized()
            errors[label] = float(np.einsum("ko,kl,lo->", delta, gram, delta))
        return errors


# protobuf's 2 GB limit, less a margin for the graph itself
_INLINE_LIMIT = 2**31 - 2**26


def needs_external_data(model: Any, external_data: bool) -> bool:
    """Whether ``model`` must keep its weights in a file of their own: when its source did, or
    when it outgrew the limit (a shadow graph holds the fp32 weights and the int8 ones)."""
    return external_data or model.ByteSize() > _INLINE_LIMIT


def save_model(model: Any, target: Path, *, external_data: bool) -> None:
    """Save ``model``; with ``external_data`` (graphs over 2 GB) its weights go to one file
    named after the target, as the bundle format expects."""
    import onnx

    if external_data:
        onnx.save(model, str(target), save_as_external_data=True, location=target.name + "_data")
    else:
        onnx.save(model, str(target))
