"""Per-row int8: each MatMul's activations get one scale per token row, computed in the graph.

onnxruntime's dynamic quantization uses one activation scale per tensor, computed over the
whole micro-batch (every row and every padding token), so a text's scores depend on what it
was batched with. Here every activation row is quantized on its own:

    scale = max(|x_row| * smooth) / 127                          (ReduceMax over the last axis)
    q     = QuantizeLinear(x * smooth, scale, 128)   (uint8: round half to even, saturate)
    y     = MatMulIntegerToFloat(q, w_q, scale, w_scale, 128) (+ the graph's own bias Add)

The row scale feeds QuantizeLinear directly as a block scale (opset 21: one block of K per
row), so the division happens inside its vectorised kernel instead of in a separate Div pass
over the activation; the graph's opset is raised to 21 for that (from 18 or later, where only
types were added to the ops text models use). Older graphs divide first and quantize with a
unit scale: the same numbers, one more pass.

Activations that are (nearly) never negative, like GELU outputs (>= -0.17), are lifted by
their calibration floor instead (``offset``) and use uint8 [0, 255] with zero point 0: twice
the levels; ``offset`` times the weight's column sums goes back into the bias Add.

A row's result then depends on that row alone, bit for bit. Integer products are exact, so
the only float work per row is elementwise. ``smooth`` (optional, SmoothQuant) divides
activation channels by a per-channel factor that is multiplied into the weight rows, moving
outlier channels' range from activations into weights.

Weights, their AVX2-safe levels and the optional Hadamard rotation are in ``weights``.

``static_scale`` (optional) replaces the row scale with one calibrated scale S for the
activation, so the chain is a single Mul (by 1 / (smooth * S), one constant) and a
QuantizeLinear with a unit scale; values beyond the calibrated range saturate. A row still
depends on that row alone. With a scalar activation scale, onnxruntime applies the scales and
the bias inside the GEMM's output loop, so the graph's bias ``Add`` is folded into
MatMulIntegerToFloat too. With a per-row scale it cannot be: that kernel would scale a fused
bias by the row scale as well, so the bias stays the graph's own ``Add`` after the MatMul
(and the row scale is applied in a separate pass over the output).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .weights import (
    ACTIVATION_LEVEL,
    INTEGER_MATMUL,
    TINY,
    UNSIGNED_ACTIVATION_LEVEL,
    RowQuantWeights,
    hadamard,
    static_multiplier,
)

__all__ = ["BLOCKED_OPSET", "matmul_inputs", "rowquant", "rowquant_in_place", "weight_matmuls"]

_ZERO_POINT = 128
BLOCKED_OPSET = 21  # QuantizeLinear's block_size: a per-row scale without a Div pass
# Ops whose meaning changed between opsets 18 and 21 (not mere type additions): a graph holding
# one keeps its opset and the Div path.
_CHANGED_SINCE_18 = frozenset({"DFT", "GridSample", "GroupNormalization"})


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

    out = onnx.ModelProto()
    out.CopyFrom(model)
    rowquant_in_place(out, weights)
    return out


def rowquant_in_place(out: Any, weights: Mapping[str, RowQuantWeights]) -> None:
    """``rowquant`` on ``out`` itself, for a graph that is already a private copy (a multi-GB
    graph copied once more would hold its weights twice)."""
    from onnx import helper, numpy_helper

    graph = out.graph
    by_name = {node.name: node for node in graph.node}
    missing = sorted(set(weights) - set(by_name))
    if missing:
        raise ValueError(f"no MatMul named {missing[:3]} in the graph")
    if not weights:  # nothing to rewrite: the graph as it was, opset included
        return
    _ensure_ms_domain(out)

    new_nodes: list[Any] = []
    new_inits: list[Any] = []
    quantized: dict[tuple[str, bytes], tuple[str, str]] = {}  # (activation, smooth) -> (q, scale)
    prefix = "rowquant"
    consts = _constants(new_inits, prefix)
    opset = _raise_opset(out)
    for node in graph.node:
        spec = weights.get(node.name)
        if spec is None:
            new_nodes.append(node)
            continue
        _check_spec(node, spec)
        activation = node.input[0]
        smoothing = b"" if spec.smooth is None else spec.smooth.tobytes()
        key = (activation, smoothing + repr((spec.offset, spec.rotation, spec.static_scale)).encode())
        if key not in quantized:
            tag = f"{prefix}/a{len(quantized)}"
            quantized[key] = _quantize_rows(new_nodes, new_inits, consts, activation, spec, tag, opset)
        q_name, scale_name = quantized[key]
        zero_point = consts["zero_point"] if spec.offset is None else consts["unsigned_zero_point"]
        base = f"{prefix}/{node.name}"
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(spec.levels, dtype=np.int8), f"{base}/w_q"))
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(spec.scale, dtype=np.float32), f"{base}/w_scale"))
        product = node.output[0] if spec.offset_output is None else f"{base}/offset_product"
        new_nodes.append(
            helper.make_node(
                INTEGER_MATMUL,
                [q_name, f"{base}/w_q", scale_name, f"{base}/w_scale", zero_point],
                [product],
                name=f"{node.name}/int8",
                domain="com.microsoft",
            )
        )
        if spec.offset_output is not None:  # (x - offset) W + offset W; folded into a bias Add below
            new_inits.append(numpy_helper.from_array(spec.offset_output.astype(np.float32), f"{base}/offset_output"))
            new_nodes.append(helper.make_node("Add", [product, f"{base}/offset_output"], [node.output[0]], name=f"{base}/unshift"))
    del graph.node[:]
    graph.node.extend(_fuse_static_bias(_fold_into_bias(new_nodes, new_inits, graph), new_inits, graph))
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph)


def _check_spec(node: Any, spec: RowQuantWeights) -> None:
    if node.op_type != "MatMul":
        raise ValueError(f"{node.name} is a {node.op_type}, not a MatMul")
    if spec.rotation and spec.offset is not None:
        raise ValueError(f"{node.name}: a rotated activation is no longer non-negative; it cannot use an offset")
    if spec.static_scale is not None and (spec.rotation or spec.offset is not None):
        raise ValueError(f"{node.name}: a static activation scale takes neither a rotation nor an offset")


def _fold_into_bias(nodes: list[Any], inits: list[Any], graph: Any) -> list[Any]:
    """Merge each ``unshift`` Add into the bias Add that alone reads its output (one pass over
    the output instead of two); where there is no such bias Add, the unshift Add stays."""
    from onnx import numpy_helper

    values = {i.name: i for i in [*graph.initializer, *inits]}
    readers, pinned = _readers_and_pinned(nodes, graph)
    dropped: set[int] = set()
    for node in nodes:
        after = readers.get(node.output[0], [])
        if not node.name.endswith("/unshift") or len(after) != 1 or after[0].op_type != "Add" or node.output[0] in pinned:
            continue
        other = [name for name in after[0].input if name != node.output[0]]
        if len(other) != 1 or other[0] not in values:
            continue
        bias = numpy_helper.to_array(values[other[0]])
        extra = numpy_helper.to_array(values[node.input[1]])
        if bias.shape != extra.shape:
            continue
        merged = f"{node.name}/bias"
        inits.append(numpy_helper.from_array((bias + extra).astype(np.float32), merged))
        after[0].input[:] = [node.input[0] if name == node.output[0] else merged for name in after[0].input]
        dropped.add(id(node))
    return [node for node in nodes if id(node) not in dropped]


def _fuse_static_bias(nodes: list[Any], inits: list[Any], graph: Any) -> list[Any]:
    """Move the bias ``Add`` after a MatMulIntegerToFloat with a scalar (static) activation
    scale into the node's bias input, where the GEMM's output loop adds it: one pass over the
    output fewer. Only a bias the Add alone reads from a [N] initializer qualifies."""
    values = {i.name: i for i in [*graph.initializer, *inits]}
    readers, pinned = _readers_and_pinned(nodes, graph)
    dropped: set[int] = set()
    for node in nodes:
        scale = values.get(node.input[2]) if node.op_type == INTEGER_MATMUL else None
        if scale is None or int(np.prod(scale.dims)) != 1 or len(node.input) > 5:  # per-row scales are computed
            continue
        after = readers.get(node.output[0], [])
        if len(after) != 1 or after[0].op_type != "Add" or node.output[0] in pinned:
            continue
        other = [name for name in after[0].input if name != node.output[0]]
        columns = list(values[node.input[1]].dims[-1:]) if node.input[1] in values else None
        if len(other) != 1 or other[0] not in values or list(values[other[0]].dims) != columns:
            continue
        node.input.extend(["", other[0]])  # no weight zero point, then the bias
        node.output[0] = after[0].output[0]
        dropped.add(id(after[0]))
    return [node for node in nodes if id(node) not in dropped]


def _readers_and_pinned(nodes: list[Any], graph: Any) -> tuple[dict[str, list[Any]], set[str]]:
    """Which of ``nodes`` read each name, and the names whose producer must stay as it is: the
    graph's outputs and names read inside If/Loop/Scan bodies."""
    readers: dict[str, list[Any]] = {}
    pinned = {o.name for o in graph.output}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                pinned.update(name for inner in _all_nodes(sub) for name in inner.input)
    return readers, pinned


def _constants(inits: list[Any], prefix: str) -> dict[str, str]:
    from onnx import numpy_helper

    values = {
        "zero_point": np.array(_ZERO_POINT, dtype=np.uint8),
        "unsigned_zero_point": np.array(0, dtype=np.uint8),
        "inv_unsigned_level": np.array(1.0 / UNSIGNED_ACTIVATION_LEVEL, dtype=np.float32),
        "one": np.array(1.0, dtype=np.float32),
        "inv_level": np.array(1.0 / ACTIVATION_LEVEL, dtype=np.float32),
        "tiny": np.array(TINY, dtype=np.float32),
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
    spec: RowQuantWeights,
    tag: str,
    opset: int,
) -> tuple[str, str]:
    """Append the per-row quantization of ``activation``; returns (uint8 rows, scale [..., 1]).

    Signed activations: symmetric, zero point 128. Non-negative ones (``spec.offset``): x minus
    the floor, zero point 0, levels [0, 255], and no Abs needed for the row maximum. A
    ``static_scale``: the same scale for every row (returned as a scalar)."""
    from onnx import helper, numpy_helper

    if spec.static_scale is not None:
        return _static_quantize(nodes, inits, consts, activation, spec, tag)
    source = activation
    if spec.offset is not None:
        inits.append(numpy_helper.from_array(np.array(spec.offset, dtype=np.float32), f"{tag}/offset"))
        nodes.append(helper.make_node("Sub", [source, f"{tag}/offset"], [f"{tag}/lifted"], name=f"{tag}/lift"))
        source = f"{tag}/lifted"
    if spec.smooth is not None:
        inits.append(numpy_helper.from_array((1.0 / spec.smooth).astype(np.float32), f"{tag}/inv_smooth"))
        nodes.append(helper.make_node("Mul", [source, f"{tag}/inv_smooth"], [f"{tag}/smoothed"], name=f"{tag}/smooth"))
        source = f"{tag}/smoothed"
    if spec.rotation:
        source = _rotate(nodes, inits, source, spec.rotation, tag)
    magnitude = source
    if spec.offset is None:
        nodes.append(helper.make_node("Abs", [source], [f"{tag}/abs"], name=f"{tag}/abs"))
        magnitude = f"{tag}/abs"
    if opset >= 18:  # axes became an input in opset 18
        peak = helper.make_node("ReduceMax", [magnitude, consts["last_axis"]], [f"{tag}/peak"], name=f"{tag}/peak", keepdims=1)
    else:
        peak = helper.make_node("ReduceMax", [magnitude], [f"{tag}/peak"], name=f"{tag}/peak", keepdims=1, axes=[-1])
    level = consts["inv_level"] if spec.offset is None else consts["inv_unsigned_level"]
    nodes.extend(
        [
            peak,
            helper.make_node("Mul", [f"{tag}/peak", level], [f"{tag}/raw_scale"], name=f"{tag}/raw_scale"),
            helper.make_node("Max", [f"{tag}/raw_scale", consts["tiny"]], [f"{tag}/scale"], name=f"{tag}/scale"),
        ]
    )
    if opset >= BLOCKED_OPSET:
        nodes.extend(_blocked_quantize(consts, source, spec, tag))
    else:
        zero_point = consts["zero_point"] if spec.offset is None else consts["unsigned_zero_point"]
        nodes.append(helper.make_node("Div", [source, f"{tag}/scale"], [f"{tag}/unit"], name=f"{tag}/unit"))
        nodes.append(helper.make_node("QuantizeLinear", [f"{tag}/unit", consts["one"], zero_point], [f"{tag}/q"],
                                      name=f"{tag}/q"))
    return f"{tag}/q", f"{tag}/scale"


def _static_quantize(
    nodes: list[Any], inits: list[Any], consts: Mapping[str, str], activation: str, spec: RowQuantWeights, tag: str
) -> tuple[str, str]:
    """x * (1 / (smooth * S)), then QuantizeLinear with a unit scale: returns (uint8, scalar S)."""
    from onnx import helper, numpy_helper

    inits.append(numpy_helper.from_array(static_multiplier(spec), f"{tag}/static_multiplier"))
    inits.append(numpy_helper.from_array(np.array(spec.static_scale, dtype=np.float32), f"{tag}/static_scale"))
    nodes.append(helper.make_node("Mul", [activation, f"{tag}/static_multiplier"], [f"{tag}/unit"], name=f"{tag}/unit"))
    nodes.append(helper.make_node("QuantizeLinear", [f"{tag}/unit", consts["one"], consts["zero_point"]], [f"{tag}/q"],
                                  name=f"{tag}/q"))
    return f"{tag}/q", f"{tag}/static_scale"


def _rotate(nodes: list[Any], inits: list[Any], source: str, block: int, tag: str) -> str:
    """Append x -> x R (block-diagonal Hadamard): [..., K] -> [rows * K / b, b] @ H -> [..., K]."""
    from onnx import helper, numpy_helper

    inits.append(numpy_helper.from_array(hadamard(block).astype(np.float32), f"{tag}/hadamard"))
    inits.append(numpy_helper.from_array(np.array([-1, block], dtype=np.int64), f"{tag}/blocks"))
    nodes.extend(
        [
            helper.make_node("Shape", [source], [f"{tag}/shape"], name=f"{tag}/shape"),
            helper.make_node("Reshape", [source, f"{tag}/blocks"], [f"{tag}/blocked"], name=f"{tag}/blocked"),
            helper.make_node("MatMul", [f"{tag}/blocked", f"{tag}/hadamard"], [f"{tag}/spun"], name=f"{tag}/spin"),
            helper.make_node("Reshape", [f"{tag}/spun", f"{tag}/shape"], [f"{tag}/rotated"], name=f"{tag}/rotated"),
        ]
    )
    return f"{tag}/rotated"


def _blocked_quantize(consts: Mapping[str, str], source: str, spec: RowQuantWeights, tag: str) -> list[Any]:
    """QuantizeLinear with the row scale [..., 1] as one block of K: no Div pass. A blocked zero
    point must have the scale's shape (128 for signed rows); unsigned rows omit it (0, uint8)."""
    from onnx import helper

    k = int(spec.levels.shape[0])
    if spec.offset is not None:
        return [helper.make_node("QuantizeLinear", [source, f"{tag}/scale"], [f"{tag}/q"], name=f"{tag}/q",
                                 axis=-1, block_size=k)]
    return [
        helper.make_node("Shape", [f"{tag}/scale"], [f"{tag}/rows"], name=f"{tag}/rows"),
        helper.make_node("Expand", [consts["zero_point"], f"{tag}/rows"], [f"{tag}/zero_point"], name=f"{tag}/zero_point"),
        helper.make_node("QuantizeLinear", [source, f"{tag}/scale", f"{tag}/zero_point"], [f"{tag}/q"], name=f"{tag}/q",
                         axis=-1, block_size=k),
    ]


def _raise_opset(model: Any) -> int:
    """Raise the default domain to :data:`BLOCKED_OPSET` where that changes no op's meaning
    (opset 18 or later, none of the ops that changed since, in any subgraph or local function);
    returns the opset now in use."""
    default = [op for op in model.opset_import if op.domain in ("", "ai.onnx")]
    opset = default[0].version if default else 18
    graphs = [model.graph, *model.functions]
    if default and 18 <= opset < BLOCKED_OPSET and not any(n.op_type in _CHANGED_SINCE_18 for g in graphs for n in _all_nodes(g)):
        default[0].version = opset = BLOCKED_OPSET
    return opset


def _all_nodes(graph: Any) -> Iterable[Any]:
    """Every node of a graph or function, including those of If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                yield from _all_nodes(sub)


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
