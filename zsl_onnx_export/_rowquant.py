"""Per-row int8: each MatMul's activations get one scale per token row, computed in the graph.

onnxruntime's dynamic quantization uses one activation scale per tensor, computed over the
whole micro-batch (every row and every padding token), so a text's scores depend on what it
was batched with. Here every activation row is quantized on its own:

    scale = max(|x_row| * smooth) / 127                          (ReduceMax over the last axis)
    q     = QuantizeLinear(x * smooth / scale, 1, 128)   (uint8: round half to even, saturate)
    y     = MatMulIntegerToFloat(q, w_q, scale, w_scale, 128) (+ the graph's own bias Add)

A row's result then depends on that row alone, bit for bit. Integer products are exact, so
the only float work per row is elementwise. ``smooth`` (optional, SmoothQuant) divides
activation channels by a per-channel factor that is multiplied into the weight rows, moving
outlier channels' range from activations into weights.

Weights are symmetric per output column with levels in [-64, 64] (``WEIGHT_LEVEL``): on CPUs
without VNNI, onnxruntime's u8 x s8 kernel adds pairs of products in int16 with saturation
(vpmaddubsw), and 2 x 255 x 64 = 32,640 fits int16, so the same file gives the same integers
on AVX2, AVX512-VNNI and AMX machines. :func:`saturation_free` checks a graph for that.

The bias stays the graph's own ``Add`` after the MatMul: MatMulIntegerToFloat's fused bias
input would be scaled by the per-row activation scale as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATION_LEVEL",
    "WEIGHT_LEVEL",
    "RowQuantWeights",
    "matmul_inputs",
    "quantize_weights",
    "reference_matmul",
    "rowquant",
    "saturation_free",
    "weight_matmuls",
]

ACTIVATION_LEVEL = 127  # activations: (x / scale) in [-127, 127], stored as uint8 + 128
WEIGHT_LEVEL = 64  # weights: [-64, 64] so that u8 x s8 pair sums fit int16 (2 * 255 * 64 = 32,640)
_ZERO_POINT = 128
_TINY = np.float32(np.finfo(np.float32).tiny)  # scale floor: an all-zero row quantizes to 0, not NaN
_INTEGER_MATMUL = "MatMulIntegerToFloat"


@dataclass(frozen=True)
class RowQuantWeights:
    """One MatMul's int8 weight [K, N] with its per-column scale [N] and the per-input-channel
    smoothing factor [K] already multiplied into it (None: no smoothing)."""

    levels: np.ndarray  # int8 [K, N], values in [-WEIGHT_LEVEL, WEIGHT_LEVEL]
    scale: np.ndarray  # float32 [N]
    smooth: np.ndarray | None = None  # float32 [K]; activations are divided by it

    def dequantized(self) -> np.ndarray:
        """The fp32 weight this stands for, on smoothed activations."""
        return self.levels.astype(np.float32) * self.scale


def quantize_weights(weight: np.ndarray, smooth: np.ndarray | None = None) -> RowQuantWeights:
    """Round-to-nearest symmetric per-column int8 of ``weight`` [K, N] (rows times ``smooth``)."""
    w = np.asarray(weight, dtype=np.float64)
    if smooth is not None:
        w = w * np.asarray(smooth, dtype=np.float64)[:, None]
    scale = weight_scale(w)
    levels = np.clip(np.round(w / scale), -WEIGHT_LEVEL, WEIGHT_LEVEL).astype(np.int8)
    return RowQuantWeights(levels, scale.astype(np.float32), None if smooth is None else np.asarray(smooth, np.float32))


def weight_scale(weight: np.ndarray) -> np.ndarray:
    """Per-column symmetric scale so that the largest |w| maps to WEIGHT_LEVEL (floored)."""
    peak = np.abs(np.asarray(weight, dtype=np.float64)).max(axis=0)
    return np.maximum(peak / WEIGHT_LEVEL, float(_TINY))


def weight_matmuls(model: Any) -> list[str]:
    """Names of MatMul nodes whose second input is a 2-D float initializer (dense layers)."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or not node.name or len(node.input) != 2:
            continue
        weight = inits.get(node.input[1])
        if weight is not None and weight.data_type == TensorProto.FLOAT and len(weight.dims) == 2:
            if node.input[0] not in inits:
                found.append(node.name)
    return found


def matmul_inputs(model: Any, nodes: Sequence[str]) -> list[str]:
    """The activations the named MatMuls read, each once, in graph order."""
    wanted = set(nodes)
    seen: dict[str, None] = {}
    for node in model.graph.node:
        if node.name in wanted:
            seen.setdefault(node.input[0], None)
    return list(seen)


def rowquant(model: Any, weights: Mapping[str, RowQuantWeights]) -> Any:
    """A copy of ``model`` with each named MatMul computed in per-row int8 with its weights.

    MatMuls that read the same activation with the same smoothing share one quantization.
    The original fp32 weight initializers are dropped when nothing else reads them.
    """
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    by_name = {node.name: node for node in graph.node}
    missing = sorted(set(weights) - set(by_name))
    if missing:
        raise ValueError(f"no MatMul named {missing[:3]} in the graph")
    _ensure_ms_domain(out)

    new_nodes: list[Any] = []
    new_inits: list[Any] = []
    quantized: dict[tuple[str, bytes], tuple[str, str]] = {}  # (activation, smooth) -> (q, scale)
    prefix = "rowquant"
    consts = _constants(new_inits, prefix)
    opset = next((op.version for op in out.opset_import if op.domain in ("", "ai.onnx")), 18)
    for node in graph.node:
        spec = weights.get(node.name)
        if spec is None:
            new_nodes.append(node)
            continue
        if node.op_type != "MatMul":
            raise ValueError(f"{node.name} is a {node.op_type}, not a MatMul")
        activation = node.input[0]
        key = (activation, b"" if spec.smooth is None else spec.smooth.tobytes())
        if key not in quantized:
            tag = f"{prefix}/a{len(quantized)}"
            quantized[key] = _quantize_rows(new_nodes, new_inits, consts, activation, spec.smooth, tag, opset)
        q_name, scale_name = quantized[key]
        base = f"{prefix}/{node.name}"
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(spec.levels, dtype=np.int8), f"{base}/w_q"))
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(spec.scale, dtype=np.float32), f"{base}/w_scale"))
        new_nodes.append(
            helper.make_node(
                _INTEGER_MATMUL,
                [q_name, f"{base}/w_q", scale_name, f"{base}/w_scale", consts["zero_point"]],
                [node.output[0]],
                name=f"{node.name}/int8",
                domain="com.microsoft",
            )
        )
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph)
    return out


def _constants(inits: list[Any], prefix: str) -> dict[str, str]:
    from onnx import numpy_helper

    values = {
        "zero_point": np.array(_ZERO_POINT, dtype=np.uint8),
        "one": np.array(1.0, dtype=np.float32),
        "inv_level": np.array(1.0 / ACTIVATION_LEVEL, dtype=np.float32),
        "tiny": np.array(_TINY, dtype=np.float32),
        "last_axis": np.array([-1], dtype=np.int64),
    }
    names = {}
    for key, value in values.items():
        names[key] = f"{prefix}/{key}"
        inits.append(numpy_helper.from_array(value, names[key]))
    return names


def _quantize_rows(
    nodes: list[Any],
    inits: list[Any],
    consts: Mapping[str, str],
    activation: str,
    smooth: np.ndarray | None,
    tag: str,
    opset: int,
) -> tuple[str, str]:
    """Append the per-row quantization of ``activation``; returns (uint8 rows, scale [..., 1])."""
    from onnx import helper, numpy_helper

    source = activation
    if smooth is not None:
        inits.append(numpy_helper.from_array((1.0 / smooth).astype(np.float32), f"{tag}/inv_smooth"))
        nodes.append(helper.make_node("Mul", [activation, f"{tag}/inv_smooth"], [f"{tag}/smoothed"], name=f"{tag}/smooth"))
        source = f"{tag}/smoothed"
    if opset >= 18:  # axes became an input in opset 18
        peak = helper.make_node("ReduceMax", [f"{tag}/abs", consts["last_axis"]], [f"{tag}/peak"], name=f"{tag}/peak", keepdims=1)
    else:
        peak = helper.make_node("ReduceMax", [f"{tag}/abs"], [f"{tag}/peak"], name=f"{tag}/peak", keepdims=1, axes=[-1])
    nodes.extend(
        [
            helper.make_node("Abs", [source], [f"{tag}/abs"], name=f"{tag}/abs"),
            peak,
            helper.make_node("Mul", [f"{tag}/peak", consts["inv_level"]], [f"{tag}/raw_scale"], name=f"{tag}/raw_scale"),
            helper.make_node("Max", [f"{tag}/raw_scale", consts["tiny"]], [f"{tag}/scale"], name=f"{tag}/scale"),
            helper.make_node("Div", [source, f"{tag}/scale"], [f"{tag}/unit"], name=f"{tag}/unit"),
            helper.make_node(
                "QuantizeLinear", [f"{tag}/unit", consts["one"], consts["zero_point"]], [f"{tag}/q"], name=f"{tag}/q"
            ),
        ]
    )
    return f"{tag}/q", f"{tag}/scale"


def _ensure_ms_domain(model: Any) -> None:
    from onnx import helper

    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    used |= {name for node in graph.node for attr in node.attribute for g in _subgraphs(attr) for name in _graph_inputs(g)}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _subgraphs(attr: Any) -> Iterable[Any]:
    if attr.g.node:
        yield attr.g
    yield from attr.graphs


def _graph_inputs(graph: Any) -> set[str]:
    return {name for node in graph.node for name in node.input}


def saturation_free(model: Any) -> list[str]:
    """Names of MatMulIntegerToFloat nodes whose int8 weights could saturate int16 pair sums
    on AVX2 without VNNI (an empty list means the graph is portable)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    unsafe = []
    for node in model.graph.node:
        if node.op_type != _INTEGER_MATMUL:
            continue
        weight = inits.get(node.input[1])
        if weight is None:
            unsafe.append(node.name)  # a computed weight cannot be bounded here
            continue
        values = numpy_helper.to_array(weight).astype(np.int32)
        if np.abs(values).max(initial=0) > WEIGHT_LEVEL:
            unsafe.append(node.name)
    return unsafe


def reference_matmul(x: np.ndarray, spec: RowQuantWeights) -> np.ndarray:
    """numpy model of one rewritten MatMul (without its bias): what the graph must compute."""
    xs = x.astype(np.float32)
    if spec.smooth is not None:
        xs = xs * (np.float32(1.0) / spec.smooth).astype(np.float32)
    peak = np.abs(xs).max(axis=-1, keepdims=True)
    scale = np.maximum(peak * np.float32(1.0 / ACTIVATION_LEVEL), _TINY).astype(np.float32)
    q = np.clip(np.round(xs / scale), -ACTIVATION_LEVEL - 1, ACTIVATION_LEVEL).astype(np.int64)
    acc = q @ spec.levels.astype(np.int64)
    return (acc.astype(np.float32) * scale * spec.scale).astype(np.float32)

