"""Compute the last layers' token-wise work only for the token the classifier head reads.

Sequence classifiers read one token of the last hidden state (BERT's pooler, ELECTRA's,
RoBERTa's and DeBERTa's heads take position 0). Everything after the last attention block is
token-wise (output projection, residual adds, LayerNorm, the feed-forward block), so
``Gather(axis=1, index 0)`` commutes with it: moving that Gather up to the last attention's
output computes those layers for one token instead of every token. The result is exact
(same arithmetic on the same values); the exporter still checks it against PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Ops that act on each token independently (on the last axis at most), given that their other
# inputs are constants of rank <= 1 (biases, scales, LayerNorm weights) or already gathered.
_TOKENWISE = {
    "Add", "Sub", "Mul", "Div", "Erf", "Tanh", "Relu", "Sigmoid", "Sqrt", "Pow", "Cast", "Identity",
    "Gelu", "FastGelu", "BiasGelu", "QuickGelu",
}
_LAST_AXIS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"}


def gather_head_token_early(model: Any) -> int:
    """Rewrite ``model`` (an onnx.ModelProto) in place; returns how many nodes now see one token."""
    import onnx

    graph = model.graph
    constants = _constants(graph)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads = [n for n in graph.node if _is_head_gather(n, constants)]
    if len(heads) != 1:
        return 0
    head = heads[0]
    order = list(graph.node)
    region = _token_region(graph, order, head, constants, consumers)
    if not region:
        return 0
    new_nodes = _slice_region_inputs(graph, order, region, constants)
    _drop_head(graph, order, head, consumers, new_nodes)
    # Shapes of rewired tensors changed; drop stale value_info so ORT re-infers them.
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return len(region)


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Initializers, Constant nodes and Identities of them, by tensor name."""
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # topological order, so an Identity of a constant is seen after it
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in constants:  # optimum's shared weights
            constants[node.output[0]] = constants[node.input[0]]
    return constants


def _eligible(node: Any, constants: dict[str, np.ndarray], consumers: dict[str, list[Any]]) -> bool:
    """Whether ``node`` works on each token on its own, so it can run on the head token only."""
    inputs = [i for i in node.input if i]
    if node.op_type == "MatMul":  # activations x a weight matrix
        return inputs[0] not in constants and inputs[1] in constants and constants[inputs[1]].ndim == 2
    if node.op_type in _LAST_AXIS:  # statistics over the hidden axis only; extra outputs unused
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        return axis == -1 and inputs[0] not in constants and not any(o in consumers for o in node.output[1:] if o)
    return (node.op_type in _TOKENWISE
            and any(i not in constants for i in inputs)
            and all(constants[i].ndim <= 1 for i in inputs if i in constants))


def _token_region(graph: Any, order: list[Any], head: Any, constants: dict[str, np.ndarray],
                  consumers: dict[str, list[Any]]) -> set[int]:
    """Ids of the nodes whose outputs only ever reach the head Gather (or each other)."""
    # Walk back from the head (reverse topological order): a node joins the region when it is
    # token-wise and every consumer of its outputs is the head or already in the region.
    graph_outputs = {o.name for o in graph.output}
    region: set[int] = set()
    changed = True
    while changed:
        changed = False
        for node in reversed(order):
            if id(node) in region or node is head or not _eligible(node, constants, consumers):
                continue
            outs = [o for o in node.output if o]
            users = [c for o in outs for c in consumers.get(o, [])]
            if users and not graph_outputs.intersection(outs) and all(c is head or id(c) in region for c in users):
                region.add(id(node))
                changed = True
    return region


def _slice_region_inputs(graph: Any, order: list[Any], region: set[int],
                         constants: dict[str, np.ndarray]) -> list[tuple[int, Any]]:
    """Feed the region's outside inputs through a head-token Gather; returns (after, node) pairs."""
    from onnx import helper, numpy_helper

    index_name = "head_token_index"
    graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int64), index_name))
    producers = {out: node for node in graph.node for out in node.output}
    position = {id(n): i for i, n in enumerate(order)}
    sliced: dict[str, str] = {}
    new_nodes = []
    for node in order:
        if id(node) not in region:
            continue
        for k, name in enumerate(node.input):
            if not name or name in constants:
                continue
            producer = producers.get(name)
            if producer is not None and id(producer) in region:
                continue
            if name not in sliced:
                sliced[name] = f"{name}/head_token"
                new_nodes.append(
                    (position[id(producer)] if producer is not None else -1,
                     helper.make_node("Gather", [name, index_name], [sliced[name]], axis=1,
                                      name=f"{name}/GatherHeadToken"))
                )
            node.input[k] = sliced[name]
    return new_nodes


def _drop_head(graph: Any, order: list[Any], head: Any, consumers: dict[str, list[Any]],
               new_nodes: list[tuple[int, Any]]) -> None:
    """Remove the now no-op head Gather and place the new Gathers after their producers."""
    # The head Gather is now a no-op: its input already holds one token per row.
    for consumer in consumers.get(head.output[0], []):
        for k, name in enumerate(consumer.input):
            if name == head.output[0]:
                consumer.input[k] = head.input[0]
    nodes = [n for n in order if n is not head]
    # Drop the head's own index constant if nothing else reads it (ONNX Runtime warns otherwise).
    if _uses(graph, head.input[1]) == 1:
        nodes = [n for n in nodes if not (n.op_type == "Constant" and n.output[0] == head.input[1])]
        kept = [t for t in graph.initializer if t.name != head.input[1]]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    for after, gather in sorted(new_nodes, key=lambda x: x[0], reverse=True):
        anchor = order[after] if after >= 0 else None
        nodes.insert(nodes.index(anchor) + 1 if anchor is not None else 0, gather)
    del graph.node[:]
    graph.node.extend(nodes)


def _is_head_gather(node: Any, constants: dict[str, np.ndarray]) -> bool:
    if node.op_type != "Gather" or len(node.input) != 2:
        return False
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    index = constants.get(node.input[1])
    return axis == 1 and index is not None and index.ndim == 0 and int(index) == 0


def rewrite_file(path: Path) -> tuple[int, bytes]:
    """Apply :func:`gather_head_token_early` to a graph without external data, in place.

    Returns the number of nodes moved and the original bytes, so a caller whose validation
    fails can put them back.
    """
    import onnx

    original = path.read_bytes()
    model = onnx.load_from_string(original)
    moved = gather_head_token_early(model)
    if moved:
        path.write_bytes(model.SerializeToString())
    return moved, original


def _uses(graph: Any, name: str) -> int:
    """How many node inputs read ``name``, subgraphs (If, Loop bodies) included."""
    count = 0
    for node in graph.node:
        count += sum(1 for i in node.input if i == name)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                count += _uses(sub, name)
    return count
