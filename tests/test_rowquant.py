"""Per-row int8 rewrite: each MatMul's numerics against a numpy reference, bias added once,
weights inside the AVX2-safe range, rows independent of their batch mates bit for bit."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx")  # the exporter's int8 rewrite: needs the [export] extra
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from zsl_onnx_export.int8.rowquant import BLOCKED_OPSET, rowquant, weight_matmuls  # noqa: E402
from zsl_onnx_export.int8.weight_rounding import gptq_weights, smoothing_factors  # noqa: E402
from zsl_onnx_export.int8.weights import (  # noqa: E402
    WEIGHT_LEVEL,
    RowQuantWeights,
    quantize_weights,
    reference_matmul,
    saturation_free,
    static_multiplier,
)

pytestmark = pytest.mark.export

K, N, M = 48, 40, 24


# 18: raised to opset 21, row scales feed QuantizeLinear as blocks; 17: Div, then a unit scale
OPSETS = pytest.mark.parametrize("opset", [18, 17], ids=["blocked", "divided"])


def two_layer_graph(seed: int = 0, opset: int = 18) -> onnx.ModelProto:
    """x -> MatMul(w1) + b1 -> Relu -> MatMul(w2) + b2, and a second MatMul(w3) reading x too."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(K, N)).astype(np.float32)
    w1[5] *= 30  # an outlier input channel, as transformer activations have
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(rng.normal(size=N).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(N, M)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=M).astype(np.float32), "b2"),
        numpy_helper.from_array(rng.normal(size=(K, M)).astype(np.float32), "w3"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["h1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "b2"], ["y"], name="add2"),
        helper.make_node("MatMul", ["x", "w3"], ["z"], name="mm3"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", K])
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("h1", "a1", "r1", "h2", "y", "z")]
    graph = helper.make_graph(nodes, "two_layer", [x], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # what the runtime uses
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"x": x})))


def specs_for(model: onnx.ModelProto, smooth: bool) -> dict[str, RowQuantWeights]:
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    factors = None
    if smooth:
        factors = smoothing_factors(np.full(K, 2.0), [weights["w1"], weights["w3"]], alpha=0.5)
        factors[5] = 7.5  # an exactly representable factor on the outlier channel
    return {
        "mm1": quantize_weights(weights["w1"], factors),
        "mm2": quantize_weights(weights["w2"]),
        "mm3": quantize_weights(weights["w3"], factors),
    }


def inputs(rows: int = 3, tokens: int = 5, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, tokens, K)).astype(np.float32)
    x[..., 5] *= 20
    x[1, 2] = 0.0  # an all-zero row must quantize to zeros, not NaN
    return x


def test_weight_matmuls_finds_dense_layers_only():
    assert weight_matmuls(two_layer_graph()) == ["mm1", "mm2", "mm3"]


@OPSETS
@pytest.mark.parametrize("smooth", [False, True], ids=["plain", "smoothed"])
def test_each_rewritten_matmul_matches_the_numpy_reference_and_adds_its_bias_once(smooth, opset):
    model = two_layer_graph(opset=opset)
    specs = specs_for(model, smooth)
    rewritten = rowquant(model, specs)
    assert not [n for n in rewritten.graph.node if n.op_type == "MatMul"]
    assert {i.name for i in rewritten.graph.initializer}.isdisjoint({"w1", "w2", "w3"}), "fp32 weights left behind"
    out = run(rewritten, x := inputs())
    bias = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # Per MatMul, on the activation it really receives; the scale product may round once more in
    # the kernel than in numpy, so allow a few float32 ulps, far below one int8 step.
    for name, source, produced in (("mm1", x, "h1"), ("mm2", out["r1"], "h2"), ("mm3", x, "z")):
        expected = reference_matmul(source, specs[name])
        np.testing.assert_allclose(out[produced], expected, rtol=2e-6, atol=1e-6 * np.abs(expected).max())
    # the graph's Add applies the bias exactly once (not scaled by the row scale, not twice):
    # out - matmul equals the bias up to the float32 rounding of the sum
    for total, product, b in (("a1", "h1", "b1"), ("y", "h2", "b2")):
        rounding = 2 * np.spacing(np.maximum(np.abs(out[total]), np.abs(out[product])))
        assert np.all(np.abs(out[total] - out[product] - bias[b]) <= rounding)
    assert np.isfinite(out["h1"][1, 2]).all() and np.all(out["h1"][1, 2] == 0.0)


def test_reference_is_close_to_fp32():
    """The reference itself is a faithful int8 model of the fp32 product (a sanity bound)."""
    model = two_layer_graph()
    w3 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w3"))
    x = inputs()
    exact = x @ w3
    approx = reference_matmul(x, quantize_weights(w3))
    assert np.abs(approx - exact).max() < 0.05 * np.abs(exact).max()


def test_graphs_from_opset_18_quantize_rows_without_a_div_pass_and_older_ones_keep_their_opset():
    for opset, raised, divides in ((18, BLOCKED_OPSET, False), (17, 17, True)):
        rewritten = rowquant(two_layer_graph(opset=opset), specs_for(two_layer_graph(opset=opset), smooth=True))
        assert next(op.version for op in rewritten.opset_import if op.domain == "") == raised
        assert ("Div" in {n.op_type for n in rewritten.graph.node}) is divides
        assert np.isfinite(run(rewritten, inputs())["y"]).all()  # onnxruntime accepts the raised graph
    changed = two_layer_graph()
    changed.graph.node.append(helper.make_node("GroupNormalization", ["x", "s", "b"], ["g"], num_groups=1))
    assert next(op.version for op in rowquant(changed, specs_for(changed, smooth=False)).opset_import if op.domain == "") == 18
    nested = two_layer_graph()  # the same op inside an If body counts too
    body = helper.make_graph([helper.make_node("GroupNormalization", ["x", "s", "b"], ["g"], num_groups=1)], "body", [],
                             [helper.make_tensor_value_info("g", TensorProto.FLOAT, None)])
    nested.graph.node.append(helper.make_node("If", ["cond"], ["g_out"], then_branch=body, else_branch=body))
    assert next(op.version for op in rowquant(nested, specs_for(nested, smooth=False)).opset_import if op.domain == "") == 18


@OPSETS
def test_rows_are_independent_of_their_batch_mates_bit_for_bit(opset):
    rewritten = rowquant(two_layer_graph(opset=opset), specs_for(two_layer_graph(opset=opset), smooth=True))
    rng = np.random.default_rng(7)
    x = inputs(rows=6, tokens=9)
    alone = [run(rewritten, x[i : i + 1])["y"][0] for i in range(len(x))]
    for _ in range(3):
        order = rng.permutation(len(x))
        batched = run(rewritten, x[order])["y"]
        for row, index in enumerate(order):
            assert np.array_equal(batched[row], alone[index])
    # and a row's result does not change when its mates are 1000x larger
    loud = x.copy()
    loud[1:] *= 1000
    assert np.array_equal(run(rewritten, loud)["y"][0], alone[0])


@OPSETS
def test_weights_stay_in_the_avx2_safe_range_and_the_check_catches_others(opset):
    model = two_layer_graph(opset=opset)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    h = np.eye(K) + 0.1
    for spec in (quantize_weights(weights["w1"]), gptq_weights(weights["w1"], h), gptq_weights(weights["w1"], h, np.full(K, 3.0, np.float32))):
        assert spec.levels.dtype == np.int8 and np.abs(spec.levels.astype(int)).max() <= WEIGHT_LEVEL
        assert np.abs(spec.levels.astype(int)).max() == WEIGHT_LEVEL  # the range is used, not wasted
        # 2 x 255 x max|w| fits int16: vpmaddubsw's pair sums cannot saturate
        assert 2 * 255 * WEIGHT_LEVEL <= 32767
    rewritten = rowquant(model, specs_for(model, smooth=False))
    assert saturation_free(rewritten) == []
    wide = next(i for i in rewritten.graph.initializer if i.name.endswith("mm1/w_q"))
    levels = numpy_helper.to_array(wide).copy()
    levels[0, 0], levels[1, 0] = 127, 2  # rows 0 and 1 form a pair: 129 > PAIR_LIMIT
    wide.CopyFrom(numpy_helper.from_array(levels, wide.name))
    assert saturation_free(rewritten) == ["mm1/int8"]


def test_gptq_lowers_the_output_error_on_its_calibration_inputs():
    model = two_layer_graph()
    w1 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1")).astype(np.float64)
    x = inputs(rows=40, tokens=8, seed=3).reshape(-1, K).astype(np.float64)
    x = x @ np.random.default_rng(4).normal(size=(K, K)) * 0.3  # correlated channels: GPTQ's case
    gram = x.T @ x
    nearest, refined = quantize_weights(w1), gptq_weights(w1, gram)
    assert np.array_equal(nearest.scale, refined.scale)  # same kernels, same scales

    def error(spec: RowQuantWeights) -> float:
        return float(np.linalg.norm(x @ (w1 - spec.dequantized())))

    assert error(refined) < 0.8 * error(nearest)


def test_smoothing_factors_balance_activation_and_weight_ranges():
    channel_max = np.array([1.0, 100.0, 4.0, 0.0])
    weight = np.array([[1.0], [1.0], [0.25], [3.0]])
    factors = smoothing_factors(channel_max, [weight], alpha=0.5)
    np.testing.assert_allclose(factors[:3], [1.0, 10.0, 4.0])
    assert factors[3] == 1.0  # a channel never seen active is left alone


@OPSETS
def test_non_negative_activations_use_the_full_uint8_range_and_their_offset_reaches_the_bias_once(opset):
    """GELU-like inputs are lifted by their floor, quantized in [0, 255] with zero point 0, and
    floor x column sums is folded into the following bias Add."""
    from dataclasses import replace

    model = two_layer_graph(opset=opset)
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    specs = specs_for(model, smooth=False)
    offset = -0.17
    specs["mm2"] = replace(specs["mm2"], offset=offset,
                           offset_output=(offset * weights["w2"].astype(np.float64).sum(axis=0)).astype(np.float32))
    rewritten = rowquant(model, specs)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("Add") == 2, "the offset should be folded into the bias Add, not added separately"
    assert saturation_free(rewritten) == []
    x = inputs()
    h1 = np.maximum(x @ weights["w1"] + weights["b1"], 0)  # mm1's int8 output is checked elsewhere
    out = run(rewritten, x)["y"]
    # reference: mm1 in int8, relu, then mm2 on (r1 - offset) in [0, 255], plus the folded bias
    r1 = np.maximum(reference_matmul(x, specs["mm1"]) + weights["b1"], 0)
    expected = reference_matmul(r1, specs["mm2"]) + weights["b2"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    exact = h1 @ weights["w2"] + weights["b2"]
    assert np.abs(out - exact).max() < 0.05 * np.abs(exact).max()


def test_hadamard_blocks_are_orthonormal_and_fit_the_channels():
    from zsl_onnx_export.int8.weights import hadamard, hadamard_block, rotate_rows

    h = hadamard(16)
    np.testing.assert_allclose(h @ h, np.eye(16), atol=1e-12)  # symmetric and orthonormal: its own inverse
    assert [hadamard_block(k, 64) for k in (384, 1536, 48, 768, 12, 100)] == [64, 64, 16, 64, 0, 0]
    w = np.random.default_rng(0).normal(size=(48, 5))
    np.testing.assert_allclose(rotate_rows(w, 16)[:16], h @ w[:16])
    np.testing.assert_allclose(rotate_rows(rotate_rows(w, 16), 16), w, atol=1e-12)


def test_paired_weights_use_127_levels_and_keep_every_pair_within_the_limit():
    from zsl_onnx_export.int8.weights import PAIR_LIMIT, pair_sums

    model = two_layer_graph()
    w1 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1")).astype(np.float64)
    x = inputs(rows=40, tokens=8, seed=3).reshape(-1, K).astype(np.float64)
    gram = x.T @ x
    for spec in (quantize_weights(w1, paired=True), gptq_weights(w1, gram, paired=True),
                 gptq_weights(w1, gram, np.full(K, 3.0, np.float32), paired=True)):
        levels = spec.levels.astype(int)
        assert np.abs(levels).max() <= 127 and pair_sums(levels).max() <= PAIR_LIMIT
        assert pair_sums(levels).max(axis=0).min() >= PAIR_LIMIT - 2  # each column's range is used
    plain, paired = quantize_weights(w1), quantize_weights(w1, paired=True)
    error = lambda spec: float(np.abs(w1 - spec.dequantized()).mean())  # noqa: E731
    assert error(paired) < 0.7 * error(plain)  # finer steps than [-64, 64]


@OPSETS
def test_a_rotated_activation_matches_the_numpy_reference_and_has_a_smaller_error(opset):
    from dataclasses import replace

    from zsl_onnx_export.int8.weights import hadamard_block, rotate_rows

    model = two_layer_graph(opset=opset)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    block = hadamard_block(K, 64)
    rotated = {name: replace(quantize_weights(rotate_rows(weights[w], block), paired=True), rotation=block)
               for name, w in (("mm1", "w1"), ("mm3", "w3"))}
    rewritten = rowquant(model, {**rotated, "mm2": quantize_weights(weights["w2"])})
    assert sum(n.op_type == "MatMul" for n in rewritten.graph.node) == 1  # x's rotation, shared by mm1 and mm3
    out = run(rewritten, x := inputs())
    for name, produced in (("mm1", "h1"), ("mm3", "z")):
        expected = reference_matmul(x, rotated[name])
        np.testing.assert_allclose(out[produced], expected, rtol=2e-6, atol=1e-5 * np.abs(expected).max())
    exact = x @ weights["w3"]
    plain = reference_matmul(x, quantize_weights(weights["w3"], paired=True))  # same weights range, no rotation
    # x's outlier channel sets every row's int8 step; rotated, it is spread over its block
    assert np.abs(out["z"] - exact).mean() < 0.75 * np.abs(plain - exact).mean()
    assert saturation_free(rewritten) == []


def test_a_rotated_activation_cannot_take_an_offset():
    from dataclasses import replace

    model = two_layer_graph()
    spec = replace(specs_for(model, smooth=False)["mm2"], rotation=8, offset=0.0, offset_output=np.zeros(M, np.float32))
    with pytest.raises(ValueError, match="rotated"):
        rowquant(model, {"mm2": spec})


def test_rotated_weights_stand_for_the_smoothed_weights_and_gptq_lowers_their_error():
    from zsl_onnx_export.int8.stats import ActivationStats
    from zsl_onnx_export.int8.candidates import QuantConfig, quantize_model
    from zsl_onnx_export.int8.weights import rotate_rows

    model = two_layer_graph()
    w3 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w3")).astype(np.float64)
    x = inputs(rows=40, tokens=8, seed=3).reshape(-1, K)
    stats = ActivationStats(np.zeros(K), np.zeros((K, K)))
    stats.add(x)
    rotated = {}
    for gptq in (False, True):
        config = QuantConfig("test", rotation=16, paired_weights=True, gptq=gptq, unsigned=False)
        cache: dict = {}
        quantize_model(model, ["mm3"], {"x": stats}, config, cache=cache)
        (spec,) = cache.values()
        assert spec.rotation == 16 and spec.smooth is not None
        rotated[gptq] = spec
    spec = rotated[True]
    s = spec.smooth.astype(np.float64)
    back = rotate_rows(spec.dequantized().astype(np.float64), 16)  # R is its own inverse
    np.testing.assert_allclose(back, w3 * s[:, None], atol=2 * float(spec.scale.max()))

    def error(spec):  # on the calibration rows, as the graph computes them: (x / s) R (R s W)
        xr = rotate_rows(((x / s).T).astype(np.float64), 16).T
        return float(np.linalg.norm(xr @ spec.dequantized() - x @ w3))

    assert error(rotated[True]) < error(rotated[False])


@OPSETS
def test_rotated_rows_are_independent_of_their_batch_mates_bit_for_bit(opset):
    from dataclasses import replace

    from zsl_onnx_export.int8.weights import rotate_rows

    model = two_layer_graph(opset=opset)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    spec = replace(quantize_weights(rotate_rows(weights["w3"], 16), paired=True), rotation=16)
    rewritten = rowquant(model, {"mm3": spec})
    x = inputs(rows=4, tokens=6)
    together = run(rewritten, x)["z"]
    for row in range(len(x)):
        assert np.array_equal(run(rewritten, x[row : row + 1])["z"][0], together[row])


def static_specs(model: onnx.ModelProto, x: np.ndarray) -> dict[str, RowQuantWeights]:
    """mm1 and mm3 (both read x) share one calibrated scale, set below x's true range so that the
    largest values saturate; mm2 keeps per-row scales."""
    from dataclasses import replace

    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    specs = specs_for(model, smooth=True)
    factors = specs["mm1"].smooth
    peak = float(np.abs(x * (1.0 / factors)).max())
    scale = 0.8 * peak / 127
    paired = {n: quantize_weights(weights[w], factors, paired=True) for n, w in (("mm1", "w1"), ("mm3", "w3"))}
    return {**specs, **{n: replace(spec, static_scale=scale) for n, spec in paired.items()}}


@OPSETS
def test_a_static_scale_matches_the_numpy_reference_saturates_and_takes_the_bias_into_the_gemm(opset):
    model = two_layer_graph(opset=opset)
    del model.graph.output[:]  # h1 no longer read outside: its bias Add can move into the GEMM
    model.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a1", "y", "z")])
    x = inputs()
    specs = static_specs(model, x)
    rewritten = rowquant(model, specs)
    nodes = {n.name: n for n in rewritten.graph.node}
    assert "add1" not in nodes and "add2" in nodes  # static mm1 took its bias; per-row mm2 cannot
    assert nodes["mm1/int8"].input[6] == "b1" and len(nodes["mm3/int8"].input) == 5  # mm3 has no bias
    shared = [n for n in rewritten.graph.node if n.op_type == "QuantizeLinear"]
    assert len(shared) == 2, "mm1 and mm3 share one quantization of x; mm2 has its own"
    assert [n.op_type for n in rewritten.graph.node].count("ReduceMax") == 1  # only mm2's row maxima
    assert saturation_free(rewritten) == []  # 8-bit paired weights: any uint8 activation stays exact
    units = x * static_multiplier(specs["mm1"])
    assert np.abs(units).max() > 128 and np.mean(np.abs(units) > 127.5) < 0.01  # a few values saturate
    out = run(rewritten, x)
    bias = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for produced, expected in (("a1", reference_matmul(x, specs["mm1"]) + bias["b1"]), ("z", reference_matmul(x, specs["mm3"]))):
        np.testing.assert_allclose(out[produced], expected, rtol=2e-6, atol=2e-6 * np.abs(expected).max())
    exact = x @ bias["w3"]
    assert np.abs(out["z"] - exact).max() < 0.05 * np.abs(exact).max()  # saturation clips only the outliers


@OPSETS
def test_rows_with_a_static_scale_are_independent_of_their_batch_mates_bit_for_bit(opset):
    model = two_layer_graph(opset=opset)
    x = inputs(rows=6, tokens=9)
    rewritten = rowquant(model, static_specs(model, x))
    alone = [run(rewritten, x[i : i + 1]) for i in range(len(x))]
    order = np.random.default_rng(8).permutation(len(x))
    batched = run(rewritten, x[order])
    for row, index in enumerate(order):
        assert all(np.array_equal(batched[name][row], alone[index][name][0]) for name in ("y", "z"))
    loud = x.copy()
    loud[1:] *= 1000  # saturating mates change nothing for row 0
    assert np.array_equal(run(rewritten, loud)["z"][0], alone[0]["z"][0])


def test_static_scales_go_to_activations_that_several_matmuls_read():
    from zsl_onnx_export.int8.stats import ActivationStats
    from zsl_onnx_export.int8.candidates import QuantConfig, RowQuantizer, static_scale

    model = two_layer_graph()
    x = inputs(rows=8, tokens=6).reshape(-1, K)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    stats = {}
    for name, rows in (("x", x), ("r1", np.maximum(x @ weights["w1"] + weights["b1"], 0))):
        stats[name] = ActivationStats(np.zeros(rows.shape[1]), np.zeros((rows.shape[1], rows.shape[1])))
        stats[name].add(rows)
    quantizer = RowQuantizer(model, stats)
    config = QuantConfig("static", static_shared=True)
    mm1, mm2, mm3 = (quantizer.weights(config, n) for n in ("mm1", "mm2", "mm3"))
    assert mm1.static_scale is not None and mm1.static_scale == mm3.static_scale
    assert mm2.static_scale is None and mm2.offset is not None  # read by one MatMul: per-row, lifted
    expected = float((stats["x"].channel_max / mm1.smooth).max()) / 127
    assert mm1.static_scale == pytest.approx(expected, rel=1e-6) == static_scale(stats["x"].channel_max, mm1.smooth)
    plain = quantizer.weights(QuantConfig("per-row"), "mm1")
    assert plain.static_scale is None and np.array_equal(plain.levels, mm1.levels)  # same weights either way
    # named in static_inputs, x is capped (its outlier channel moves into the weights); the cache keeps both
    named = quantizer.weights(QuantConfig("named", static_inputs=("x",)), "mm1")
    assert named.static_scale < mm1.static_scale and not np.array_equal(named.smooth, mm1.smooth)
    assert np.array_equal(quantizer.weights(config, "mm1").smooth, mm1.smooth)


def test_a_chosen_static_input_moves_its_outlier_channels_into_the_weights():
    from zsl_onnx_export.int8.stats import ActivationStats
    from zsl_onnx_export.int8.candidates import OUTLIER_CHANNELS, QuantConfig, RowQuantizer, capped_smoothing

    model = two_layer_graph()
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    r1 = np.random.default_rng(3).normal(size=(48, N))
    r1[:, 2] *= 40  # one outlier channel, as a post-LN transformer's FFN input has
    stats = {"r1": ActivationStats(np.zeros(N), np.zeros((N, N)))}
    stats["r1"].add(r1)
    quantizer = RowQuantizer(model, stats)
    per_row = quantizer.weights(QuantConfig("per-row", unsigned=False), "mm2")
    chosen = quantizer.weights(QuantConfig("static", unsigned=False, static_inputs=("r1",)), "mm2")
    peak = stats["r1"].channel_max
    before, after = np.sort(peak / per_row.smooth)[::-1], np.sort(peak / chosen.smooth)[::-1]
    assert before[0] > 3 * before[OUTLIER_CHANNELS]  # the outlier set the range before
    assert after[0] == pytest.approx(before[OUTLIER_CHANNELS], rel=1e-6)  # now the third largest does
    assert chosen.static_scale == pytest.approx(before[OUTLIER_CHANNELS] / 127, rel=1e-6)
    raised = chosen.smooth > per_row.smooth
    assert 1 <= raised.sum() <= OUTLIER_CHANNELS and raised[2]
    assert np.array_equal(chosen.smooth[~raised], per_row.smooth[~raised])  # other channels keep theirs
    assert np.array_equal(capped_smoothing(peak, per_row.smooth), chosen.smooth)
    # the rewritten graph computes the reference product with those factors, its bias added once, in the GEMM
    del model.graph.output[:]  # h2 no longer read outside: its bias Add can move into the GEMM
    model.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("r1", "y")])
    rewritten = rowquant(model, {"mm2": chosen})
    nodes = {n.name: n for n in rewritten.graph.node}
    assert "add2" not in nodes and nodes["mm2/int8"].input[6] == "b2"
    out = run(rewritten, inputs(rows=4, tokens=6))
    expected = reference_matmul(out["r1"], chosen) + weights["b2"]
    np.testing.assert_allclose(out["y"], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_bias_add_stays_when_a_subgraph_reads_the_matmul_output():
    """An If body that reads the MatMul's own output pins it: fusing the bias would remove it."""
    model = two_layer_graph()
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "g")])
    body = helper.make_graph([helper.make_node("Identity", ["h1"], ["g_body"])], "body", [],
                             [helper.make_tensor_value_info("g_body", TensorProto.FLOAT, None)])
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    model.graph.node.append(helper.make_node("If", ["cond"], ["g"], then_branch=body, else_branch=body))
    x = inputs()
    rewritten = rowquant(model, static_specs(model, x))
    assert "add1" in {n.name for n in rewritten.graph.node}
    out = run(rewritten, x)
    expected = reference_matmul(x, static_specs(model, x)["mm1"])
    np.testing.assert_allclose(out["g"], expected, rtol=2e-6, atol=2e-6 * np.abs(expected).max())
