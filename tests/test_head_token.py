"""The head-token rewrite: exact, applied where the head reads token 0, left alone elsewhere."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx")  # the exporter's graph rewrite: needs the [export] extra
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from zsl_onnx_export._head_token import gather_head_token_early  # noqa: E402

pytestmark = pytest.mark.export

H, K = 8, 3


def toy_layer(extra_output: bool = False) -> onnx.ModelProto:
    """x -> (token-mixing op) -> out-proj MatMul + bias + residual -> LayerNorm -> Gelu -> head Gather -> Gemm."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(H, H)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(H,)).astype(np.float32), "b"),
        numpy_helper.from_array(np.ones(H, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(H, np.float32), "beta"),
        numpy_helper.from_array(rng.normal(size=(K, H)).astype(np.float32), "wc"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
    ]
    nodes = [
        helper.make_node("Softmax", ["x"], ["mixed"], axis=1),  # mixes tokens: must stay full length
        helper.make_node("MatMul", ["mixed", "w"], ["proj"]),
        helper.make_node("Add", ["proj", "b"], ["biased"]),
        helper.make_node("Add", ["biased", "x"], ["residual"]),
        helper.make_node("LayerNormalization", ["residual", "gamma", "beta"], ["normed"], axis=-1),
        helper.make_node("Erf", ["normed"], ["act"]),
        helper.make_node("Mul", ["act", "normed"], ["hidden"]),
        helper.make_node("Gather", ["hidden", "zero"], ["cls"], axis=1),
        helper.make_node("Gemm", ["cls", "wc"], ["logits"], transB=1),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", K])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", H]))
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", H])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"x": x})[0]


def test_rewrite_moves_every_token_wise_node_and_keeps_the_output() -> None:
    model = toy_layer()
    x = np.random.default_rng(1).normal(size=(3, 5, H)).astype(np.float32)
    before = run(model, x)
    assert gather_head_token_early(model) == 6  # MatMul, both Adds, LayerNorm, Erf, Mul
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gather") == 2  # the Softmax output and the residual input, each sliced once
    assert ops.index("Softmax") < ops.index("MatMul")
    np.testing.assert_allclose(run(model, x), before, rtol=1e-6, atol=1e-6)


def test_rewrite_leaves_a_graph_alone_when_full_states_are_also_an_output() -> None:
    model = toy_layer(extra_output=True)
    assert gather_head_token_early(model) == 0  # "hidden" is a graph output: it must keep every token
    x = np.random.default_rng(2).normal(size=(2, 4, H)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, hidden = session.run(["logits", "hidden"], {"x": x})
    assert hidden.shape == (2, 4, H)


@pytest.mark.parametrize(("family", "applied"), [("bert", True), ("electra", True), ("xlm-roberta", True),
                                                 ("deberta-v3", True), ("bart", False)])
def test_exported_bundles_record_the_rewrite(tiny_models, family: str, applied: bool) -> None:
    bundle = tiny_models(family).bundle
    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    record = manifest["variants"]["fp32"]["graph_rewrites"]["head_token"]
    assert record["applied"] is applied, record
    graph = onnx.load(str(bundle / "onnx" / "model.onnx"), load_external_data=False).graph
    gathers = [n for n in graph.node if n.name.endswith("/GatherHeadToken")]
    assert bool(gathers) is applied
    assert not list((bundle / "onnx").glob(".*")), "staging files must not ship"
