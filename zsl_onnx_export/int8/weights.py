"""int8 weight levels that stay exact on every x86 CPU, and the check that a graph keeps them.

Weights are symmetric per output column. On CPUs without VNNI, onnxruntime's u8 x s8 kernel
adds the products of weight rows 2i and 2i+1 in int16 with saturation (vpmaddubsw), so every
such pair must keep |w[2i]| + |w[2i+1]| <= 128 (``PAIR_LIMIT``): 255 x 128 = 32,640 fits int16
whatever the uint8 activation, and the integer products are exact on AVX2, AVX512-VNNI and AMX
machines alike (the fp32 ops around them may still round differently per instruction set).
Levels in [-64, 64] (``WEIGHT_LEVEL``) keep every pair inside the limit; ``paired`` weights
use [-127, 127] with a per-column scale that maps the column's largest pair sum to 127 instead,
about 0.5-1 bit more resolution. :func:`saturation_free` checks a graph for the pair limit.

``rotation`` (optional, QuaRot-style) multiplies the (smoothed) activation by a block-diagonal
Hadamard matrix R, one b x b block per b channels, before its row maximum is taken, and the
weight rows by R (R is symmetric and orthogonal, so x W = (x R)(R W)). The rotation spreads
a few large channels over their block, so a row's maximum, which sets its int8 step, is closer
to its typical value. It costs one small fp32 MatMul (b wide) per quantized activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATION_LEVEL",
    "PAIRED_WEIGHT_LEVEL",
    "PAIR_LIMIT",
    "TINY",
    "UNSIGNED_ACTIVATION_LEVEL",
    "WEIGHT_LEVEL",
    "INTEGER_MATMUL",
    "RowQuantWeights",
    "hadamard",
    "hadamard_block",
    "pair_sums",
    "paired_weight_scale",
    "quantize_weights",
    "reference_matmul",
    "rotate_rows",
    "saturation_free",
    "static_multiplier",
    "weight_scale",
]

ACTIVATION_LEVEL = 127  # activations: (x / scale) in [-127, 127], stored as uint8 + 128
WEIGHT_LEVEL = 64  # weights: [-64, 64] so that u8 x s8 pair sums fit int16 (2 * 255 * 64 = 32,640)
PAIR_LIMIT = 128  # |w[2i]| + |w[2i+1]| per column: 255 * 128 = 32,640 fits int16 (vpmaddubsw)
PAIRED_WEIGHT_LEVEL = 127  # paired weights: levels in [-127, 127], the largest pair sum scaled to 127
# Non-negative activations (offset mode): uint8 [0, 255] with zero point 0, twice the levels a
# signed activation gets over the same range; same int16 bound with the same weights.
UNSIGNED_ACTIVATION_LEVEL = 255
TINY = np.float32(np.finfo(np.float32).tiny)  # scale floor: an all-zero row quantizes to 0, not NaN
INTEGER_MATMUL = "MatMulIntegerToFloat"
_INT16_MAX = 32767


@dataclass(frozen=True)
class RowQuantWeights:
    """One MatMul's int8 weight [K, N] with its per-column scale [N] and the per-input-channel
    smoothing factor [K] already multiplied into it (None: no smoothing)."""

    levels: np.ndarray  # int8 [K, N], values in [-WEIGHT_LEVEL, WEIGHT_LEVEL]
    scale: np.ndarray  # float32 [N]
    smooth: np.ndarray | None = None  # float32 [K]; activations are divided by it
    offset: float | None = None  # floor of a non-negative activation: x - offset uses uint8 [0, 255]
    offset_output: np.ndarray | None = None  # float32 [N]: offset * column sums of W, added back
    rotation: int = 0  # Hadamard block size applied to the smoothed activation (0: none)
    static_scale: float | None = None  # one calibrated activation scale S instead of per-row scales

    def dequantized(self) -> np.ndarray:
        """The fp32 weight this stands for, on smoothed (and rotated) activations."""
        return self.levels.astype(np.float32) * self.scale


def quantize_weights(
    weight: np.ndarray, smooth: np.ndarray | None = None, level: int = WEIGHT_LEVEL, *, paired: bool = False
) -> RowQuantWeights:
    """Round-to-nearest symmetric per-column int8 of ``weight`` [K, N] (rows times ``smooth``),
    levels in [-level, level]; ``paired``: levels in [-127, 127] with each column's largest
    pair sum at 127, so rounding keeps every pair within :data:`PAIR_LIMIT`."""
    w = np.asarray(weight, dtype=np.float64)
    if smooth is not None:
        w = w * np.asarray(smooth, dtype=np.float64)[:, None]
    if paired:
        level = PAIRED_WEIGHT_LEVEL
    scale = paired_weight_scale(w) if paired else weight_scale(w, level)
    levels = np.clip(np.round(w / scale), -level, level).astype(np.int8)
    return RowQuantWeights(levels, scale.astype(np.float32), None if smooth is None else np.asarray(smooth, np.float32))


def weight_scale(weight: np.ndarray, level: int = WEIGHT_LEVEL) -> np.ndarray:
    """Per-column symmetric scale so that the largest |w| maps to ``level`` (floored)."""
    peak = np.abs(np.asarray(weight, dtype=np.float64)).max(axis=0)
    return np.maximum(peak / level, float(TINY))


def pair_sums(weight: np.ndarray) -> np.ndarray:
    """|w[2i]| + |w[2i+1]| per pair of rows [ceil(K / 2), N] (an odd last row stands alone)."""
    magnitude = np.abs(np.asarray(weight, dtype=np.float64))
    if len(magnitude) % 2:
        magnitude = np.vstack([magnitude, np.zeros((1, magnitude.shape[1]))])
    return magnitude[0::2] + magnitude[1::2]


def paired_weight_scale(weight: np.ndarray) -> np.ndarray:
    """Per-column scale that maps the column's largest pair sum to 127 (floored): rounded
    levels then sum to at most 127 + 2 x 0.5 = :data:`PAIR_LIMIT` per pair."""
    return np.maximum(pair_sums(weight).max(axis=0, initial=0.0) / PAIRED_WEIGHT_LEVEL, float(TINY))


def hadamard_block(channels: int, limit: int) -> int:
    """The largest power of two <= ``limit`` that divides ``channels`` (0 below 8: no rotation)."""
    block = 1
    while block * 2 <= limit and channels % (block * 2) == 0:
        block *= 2
    return block if block >= 8 else 0


def hadamard(block: int) -> np.ndarray:
    """The orthonormal (and symmetric) Sylvester Hadamard matrix of size ``block``, a power of two."""
    h = np.ones((1, 1))
    while len(h) < block:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(block)


def rotate_rows(matrix: np.ndarray, block: int) -> np.ndarray:
    """R @ matrix for the block-diagonal Hadamard R (``matrix`` [K, ...], K a multiple of block)."""
    m = np.asarray(matrix, dtype=np.float64)
    blocks = m.reshape(len(m) // block, block, -1)
    return np.einsum("ij,bjn->bin", hadamard(block), blocks).reshape(m.shape)


def static_multiplier(spec: RowQuantWeights) -> np.ndarray:
    """The one constant a static chain multiplies its activation by: 1 / (smooth * S)."""
    assert spec.static_scale is not None
    inverse = np.float64(1.0) / np.float64(spec.static_scale)
    if spec.smooth is None:
        return np.array(inverse, dtype=np.float32)
    return (inverse / spec.smooth.astype(np.float64)).astype(np.float32)


def reference_matmul(x: np.ndarray, spec: RowQuantWeights) -> np.ndarray:
    """numpy model of one rewritten MatMul (without its bias): what the graph must compute."""
    if spec.static_scale is not None:
        q = np.clip(np.round(x.astype(np.float32) * static_multiplier(spec)), -ACTIVATION_LEVEL - 1, ACTIVATION_LEVEL)
        acc = q.astype(np.int64) @ spec.levels.astype(np.int64)
        return (acc.astype(np.float32) * (np.float32(spec.static_scale) * spec.scale)).astype(np.float32)
    xs = x.astype(np.float32)
    if spec.offset is not None:
        xs = xs - np.float32(spec.offset)
    if spec.smooth is not None:
        xs = xs * (np.float32(1.0) / spec.smooth).astype(np.float32)
    if spec.rotation:
        h = hadamard(spec.rotation).astype(np.float32)
        xs = (xs.reshape(-1, spec.rotation) @ h).reshape(xs.shape)
    if spec.offset is None:
        peak = np.abs(xs).max(axis=-1, keepdims=True)
        scale = np.maximum(peak * np.float32(1.0 / ACTIVATION_LEVEL), TINY).astype(np.float32)
        q = np.clip(np.round(xs / scale), -ACTIVATION_LEVEL - 1, ACTIVATION_LEVEL).astype(np.int64)
    else:
        peak = xs.max(axis=-1, keepdims=True)
        scale = np.maximum(peak * np.float32(1.0 / UNSIGNED_ACTIVATION_LEVEL), TINY).astype(np.float32)
        q = np.clip(np.round(xs / scale), 0, 255).astype(np.int64)
    acc = q @ spec.levels.astype(np.int64)
    out = (acc.astype(np.float32) * scale * spec.scale).astype(np.float32)
    return out if spec.offset_output is None else out + spec.offset_output


def saturation_free(model: Any) -> list[str]:
    """Names of MatMulIntegerToFloat nodes whose integer pair sums (weight rows 2i and 2i+1, as
    vpmaddubsw adds them) could exceed int16 on AVX2 without VNNI (empty: the graph is portable).

    The largest uint8 activation is read from the graph itself: the zero point plus the level
    its per-row quantizer maps the row maximum to (the scale is Max(Mul(peak, 1 / level), tiny),
    fed to QuantizeLinear directly or through a Div); an activation quantized any other way is
    assumed to reach 255.
    """
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    unsafe = []
    for node in model.graph.node:
        if node.op_type != INTEGER_MATMUL:
            continue
        weight = inits.get(node.input[1])
        zero = inits.get(node.input[4]) if len(node.input) > 4 else np.array(0)
        if weight is None or zero is None:
            unsafe.append(node.name)  # a computed weight or zero point cannot be bounded here
            continue
        top = min(255, int(zero) + _activation_level(node.input[0], producer, inits))
        if top * int(pair_sums(weight).max(initial=0)) > _INT16_MAX:
            unsafe.append(node.name)
    return unsafe


def _activation_level(q_name: str, producer: Mapping[str, Any], inits: Mapping[str, np.ndarray]) -> int:
    """The level a per-row quantizer maps the row maximum to, or 255 if it cannot be traced.

    Blocked: QuantizeLinear(x, scale); otherwise QuantizeLinear(Div(x, scale), 1); then
    scale = Max(Mul(peak, 1 / level), tiny)."""
    quantize = producer.get(q_name)
    if quantize is None or quantize.op_type != "QuantizeLinear" or len(quantize.input) < 2:
        return 255
    name = quantize.input[1]
    if name not in producer and quantize.input[0] in producer and producer[quantize.input[0]].op_type == "Div":
        name = producer[quantize.input[0]].input[1]  # the unit-scale form
    for op, index in (("Max", 0), ("Mul", 1)):
        node = producer.get(name)
        if node is None or node.op_type != op or len(node.input) <= index:
            return 255
        name = node.input[index]
    inverse = inits.get(name)
    if inverse is None or inverse.size != 1 or float(inverse) <= 0:
        return 255
    return int(np.ceil(1.0 / float(inverse) - 1e-3))
