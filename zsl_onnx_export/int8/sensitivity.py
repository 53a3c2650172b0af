"""How much per-row int8 changes each weight MatMul's own output: every MatMul in one pass.

The guard's back-off keeps the MatMuls that int8 harms most in fp32, so it needs them ranked.
Quantizing each MatMul alone and running the whole graph costs one graph build, save, session
and pass per MatMul: on all-MiniLM-L6-v2 (36 MatMuls) that was 92 s of a 130 s export on two
cores, and XLM-R large's 144 MatMuls would take hours. Here one *shadow graph* does it in one
pass: the fp32 graph unchanged, plus for every weight MatMul a copy computed in per-row int8 on
the same fp32 input (through ``rowquant``, exactly as a candidate computes it). The probe reads
two numbers per token row and MatMul, the squared error ``|y_int8 - y|^2`` and the squared fp32
output ``|y|^2``; their sums over the ranking data give each MatMul's relative output error.

Each MatMul's error is measured on exact fp32 inputs, so errors do not compound across layers:
the ranking says where int8 loses most, not how far each loss travels to the scores. The
candidates built from the ranking are still judged end to end on held-out data, so the ranking
moves only how many MatMuls the back-off keeps in fp32, never what the guard accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .candidates import QuantConfig, RowQuantizer
from .rowquant import rowquant_in_place

__all__ = [
    "END_TO_END",
    "END_TO_END_RANKING_WEIGHTS",
    "ONE_PASS",
    "STATIC_TOLERANCE",
    "Probe",
    "by_error_per_weight",
    "local_errors",
    "rank",
    "ranks_in_one_pass",
    "shadow_graph",
    "within_tolerance",
]

# Runs a graph (onnx.ModelProto) on the ranking data with ``outputs`` exposed, and calls
# ``consume(name, rows)`` with each output's real (non-padding) token rows, batch by batch.
Probe = Callable[[Any, Sequence[str], Callable[[str, np.ndarray], None]], None]
_PREFIX = "shadow"
END_TO_END, ONE_PASS = "end_to_end", "one_pass"  # how a ranking was measured
# Up to this many weights in the weight MatMuls, ``rank`` quantizes each MatMul alone and measures
# the scores end to end (one build, save, session and pass per MatMul); above it, one pass of the
# shadow graph measures each MatMul's own output error. On all-MiniLM-L6-v2 (36 MatMuls, 10.6M
# weights) the end-to-end ranking passed with 8 MatMuls in fp32 and the one-pass ranking needed
# 20; on XLM-R large (144 MatMuls, 302M weights) end to end would take hours on two cores, and
# base-size models (85M) about half an hour.
END_TO_END_RANKING_WEIGHTS = 32_000_000
# A LayerNorm output gets one calibrated scale when that alone raises the ranking data's mean
# error by at most 5%. On the NLI fixture the FFN inputs of layers 2-5 moved it by -0.5% to
# +2.5% and those of layers 0 and 1 by +8.4% and +5.3% (the bundle manifest's guard record,
# benchmarks/results/int8_bundle_manifest.json).
STATIC_TOLERANCE = 0.05


def rank(quantizer: RowQuantizer, config: QuantConfig, *, alone: Callable[[Any], float], probe: Probe,
         per_weight: bool) -> tuple[list[tuple[str, float]], str]:
    """The weight MatMuls, most harmful first under ``config`` (ties keep graph order), with
    their errors, and how they were measured: END_TO_END (``alone`` scores a graph with one
    MatMul quantized) up to END_TO_END_RANKING_WEIGHTS, else ONE_PASS (``local_errors``).
    ``per_weight`` divides each error by the MatMul's weight count (keeping a MatMul in fp32 costs
    time in proportion to its weights)."""
    nodes = quantizer.nodes
    if not ranks_in_one_pass(quantizer):
        errors, how = {node: alone(quantizer.build(config, only_nodes=[node])) for node in nodes}, END_TO_END
    else:
        errors, how = local_errors(quantizer, config, probe), ONE_PASS
    sizes = {node: quantizer.weights(config, node).levels.size if per_weight else 1 for node in nodes}
    return [(node, errors[node]) for node in by_error_per_weight(errors, sizes)], how


def ranks_in_one_pass(quantizer: RowQuantizer) -> bool:
    """Whether ``rank`` measures this graph in one pass (it holds over END_TO_END_RANKING_WEIGHTS):
    the search then also skips what costs one whole-graph pass per activation."""
    return quantizer.weight_count() > END_TO_END_RANKING_WEIGHTS


def by_error_per_weight(error: Mapping[str, float], size: Mapping[str, int]) -> list[str]:
    """Node names, most error per weight first (ties keep the given order)."""
    return sorted(error, key=lambda node: -error[node] / size[node])


def shadow_graph(quantizer: RowQuantizer, config: QuantConfig,
                 nodes: Sequence[str] | None = None) -> tuple[Any, dict[str, tuple[str, str]]]:
    """The fp32 graph plus a per-row int8 copy of each of ``nodes`` (default: all weight
    MatMuls) reading the same input; returns it and, per MatMul, the names of its two outputs
    (squared error, squared fp32 output), each [..., 1] per token row."""
    import onnx
    from onnx import helper, numpy_helper

    chosen = list(quantizer.nodes if nodes is None else nodes)
    copies = {name: _copy_name(name) for name in chosen}
    shadow = onnx.ModelProto()
    shadow.CopyFrom(quantizer.model)
    references = {node.name: node.output[0] for node in shadow.graph.node if node.name in copies}
    ordered: list[Any] = []
    for node in shadow.graph.node:
        ordered.append(node)
        if node.name in copies:
            ordered.append(helper.make_node("MatMul", list(node.input), [f"{copies[node.name]}/y"], name=copies[node.name]))
    del shadow.graph.node[:]
    shadow.graph.node.extend(ordered)
    del ordered  # node references would keep the copy's first version alive
    rowquant_in_place(shadow, {copies[name]: quantizer.weights(config, name) for name in chosen})
    graph = shadow.graph
    opset = next((op.version for op in shadow.opset_import if op.domain in ("", "ai.onnx")), 18)
    axes = f"{_PREFIX}/last_axis"
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
    names: dict[str, tuple[str, str]] = {}
    for name in chosen:
        tag, reference = copies[name], references[name]
        graph.node.append(helper.make_node("Sub", [f"{tag}/y", reference], [f"{tag}/diff"], name=f"{tag}/diff"))
        names[name] = (_sum_square(graph, f"{tag}/diff", f"{tag}/err", axes, opset),
                       _sum_square(graph, reference, f"{tag}/ref", axes, opset))
    for output in (output for pair in names.values() for output in pair):  # exposed here: the probe needs no copy
        graph.output.append(helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
    return shadow, names


def local_errors(quantizer: RowQuantizer, config: QuantConfig, probe: Probe) -> dict[str, float]:
    """Each weight MatMul's relative output error under ``config``, sum |y_int8 - y|^2 over
    sum |y|^2 on the probe's data (padding excluded), from one pass of the shadow graph."""
    graph, names = shadow_graph(quantizer, config)
    sums = dict.fromkeys((output for pair in names.values() for output in pair), 0.0)

    def add(name: str, rows: np.ndarray) -> None:
        sums[name] += float(rows.astype(np.float64).sum())

    probe(graph, list(sums), add)
    return {node: sums[err] / max(sums[ref], np.finfo(np.float64).tiny) for node, (err, ref) in names.items()}


def _copy_name(node: str) -> str:
    return f"{_PREFIX}/{node}"


def _sum_square(graph: Any, source: str, target: str, axes: str, opset: int) -> str:
    """Append ReduceSumSquare over the last axis (kept, so token rows stay rows)."""
    from onnx import helper

    if opset >= 18:  # axes became an input in opset 18
        node = helper.make_node("ReduceSumSquare", [source, axes], [target], name=target, keepdims=1)
    else:
        node = helper.make_node("ReduceSumSquare", [source], [target], name=target, keepdims=1, axes=[-1])
    graph.node.append(node)
    return target


def within_tolerance(
    base: float, sensitivity: Sequence[tuple[str, float]], tolerance: float = STATIC_TOLERANCE
) -> tuple[str, ...]:
    """The activations whose error stays within ``tolerance`` (relative) of ``base``."""
    return tuple(a for a, err in sensitivity if err <= base * (1.0 + tolerance))
