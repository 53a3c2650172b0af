"""The int8 accuracy guard and the fp16 variant: calibration input, rejection, choice, manifest."""

import json
from dataclasses import replace

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier
from tiny_models import FAMILIES, PARITY_CASES

pytestmark = pytest.mark.export

pytest.importorskip("torch")
from zsl_onnx_export import ExportError, export_bundle  # noqa: E402
from zsl_onnx_export._cli import main  # noqa: E402
from zsl_onnx_export.int8.calibration import MIN_PAIRS, builtin_calibration, load_calibration  # noqa: E402
from zsl_onnx_export.int8.candidates import BASE_CANDIDATES, RowQuantizer  # noqa: E402
from zsl_onnx_export.int8.nli import PairRunner, search_int8  # noqa: E402
from zsl_onnx_export.int8.rowquant import matmul_inputs, weight_matmuls  # noqa: E402
from zsl_onnx_export.int8.search import STATIC_TOLERANCE, within_tolerance  # noqa: E402
from zsl_onnx_export.int8.sensitivity import local_errors  # noqa: E402
from zsl_onnx_export.int8.weights import saturation_free  # noqa: E402

LABELS = ["music", "sports", "economy"]


def test_builtin_calibration_is_multilingual_and_split_without_overlap():
    cal = builtin_calibration()
    assert len(cal) == 832
    assert any("ё" in p or "ы" in p for p in cal.premises) and any("的" in h for h in cal.hypotheses)
    ranking, heldout = set(cal.ranking.tolist()), set(cal.heldout.tolist())
    assert not ranking & heldout and ranking | heldout == set(range(len(cal)))
    assert len(heldout) == 555
    assert builtin_calibration().ranking.tolist() == cal.ranking.tolist()  # same split every export


def test_calibration_file_jsonl_and_text(tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"premise": f"Text {i} é 😀", "hypothesis": "It is fine."}) for i in range(MIN_PAIRS)) + "\n\n")
    cal = load_calibration(jsonl, template="This example is {}.")
    assert len(cal) == MIN_PAIRS and cal.premises[3] == "Text 3 é 😀"

    text = tmp_path / "texts.txt"
    text.write_text("\n".join(f"Sentence number {i}." for i in range(40)) + "\n")
    cal = load_calibration(text, template="Este ejemplo es {}.", labels=["a", "b", "c"])
    assert len(cal) == 120 and cal.hypotheses[:3] == ("Este ejemplo es a.", "Este ejemplo es b.", "Este ejemplo es c.")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("bad.jsonl", '{"premise": "a", "hypothesis": "b"}\n{oops\n', {}, r"bad.jsonl:2: not valid JSON"),
        ("empty.jsonl", '{"premise": "a", "hypothesis": " "}\n', {}, r"empty.jsonl:1: 'hypothesis' must be a non-empty"),
        ("texts.txt", "one\ntwo\n", {}, "--calibration-labels"),
        ("small.txt", "one\ntwo\n", {"labels": ["x", "y"]}, f"gives 4 calibration pairs; the guard needs at least {MIN_PAIRS}"),
    ],
)
def test_bad_calibration_files_are_named(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ExportError, match=message):
        load_calibration(path, template="This example is {}.", **kwargs)


@pytest.fixture(scope="module")
def bert_guard_inputs(tiny_models, small_calibration):
    bundle = tiny_models("bert", int8=False).bundle
    cal = load_calibration(small_calibration, template="This example is {}.")
    runner = PairRunner(bundle, cal, max_length=128, threads=1)
    reference = runner.logits(bundle / "onnx" / "model.onnx")
    return bundle, cal, runner, reference


def _search(inputs, target, reference=None, **kwargs):
    bundle, cal, runner, fp32_reference = inputs
    kwargs.setdefault("measure_speed", False)
    return search_int8(
        bundle / "onnx" / "model.onnx", target, runner=runner, calibration=cal,
        reference=fp32_reference if reference is None else reference, fp32_size=1,
        external_data=False, **kwargs,
    )


def test_guard_rejects_every_candidate_that_disagrees(bert_guard_inputs, tmp_path):
    import onnx

    bundle, cal, _, reference = bert_guard_inputs
    wrong = np.roll(reference, 1, axis=1)  # a reference no int8 model can agree with
    report = _search(bert_guard_inputs, tmp_path / "int8.onnx", reference=wrong, min_agreement=0.99)
    assert report.chosen is None and not (tmp_path / "int8.onnx").exists()
    nodes = weight_matmuls(onnx.load(str(bundle / "onnx" / "model.onnx")))
    assert sorted(n for n, _ in report.sensitivity) == sorted(nodes)  # every MatMul ranked
    assert report.ranking == "end_to_end"  # a graph this small: each MatMul alone, through the whole graph
    excluded = [len(c.config.nodes_to_exclude) for c in report.candidates]
    bases = excluded.count(0)  # the first base is skipped if no LayerNorm output kept a calibrated scale
    assert bases in (len(BASE_CANDIDATES) - 1, len(BASE_CANDIDATES)) and excluded[:bases] == [0] * bases
    assert not any(c.config.select_static for c in report.candidates)  # resolved before it ran
    # then the last base (per-row scales everywhere) climbs the ladder, most sensitive MatMuls first, up to
    # half in fp32
    ladder = report.candidates[bases:]
    ranked = [n for n, _ in report.sensitivity]
    last = BASE_CANDIDATES[-1]
    assert all(replace(c.config, name=last.name, nodes_to_exclude=()) == last for c in ladder)
    assert [len(c.config.nodes_to_exclude) for c in ladder] == sorted({min(2**i, len(nodes) // 2) for i in range(12)})
    assert all(list(c.config.nodes_to_exclude) == ranked[: len(c.config.nodes_to_exclude)] for c in ladder)
    assert excluded[-1] == len(nodes) // 2
    assert all(not c.passed and c.speedup is None for c in report.candidates)
    assert "fail" in report.table() and "chosen" not in report.table()
    assert not list(tmp_path.glob(".guard*")), "scratch files left behind"

    lossy = _search(bert_guard_inputs, tmp_path / "lossy.onnx", reference=wrong, min_agreement=0.99, keep_lossy=True)
    assert lossy.kept_lossy and lossy.chosen is max(lossy.candidates, key=lambda c: c.heldout_agreement)
    assert (tmp_path / "lossy.onnx").is_file()


def test_one_shadow_pass_measures_each_matmul_as_a_candidate_computes_it(bert_guard_inputs, tmp_path):
    """The ranking's relative output error of a MatMul equals what a candidate quantizing that
    MatMul alone computes at its output (the first MatMul reads the same fp32 input in both)."""
    import onnx

    bundle, cal, runner, _ = bert_guard_inputs
    model = onnx.load(str(bundle / "onnx" / "model.onnx"))
    nodes = weight_matmuls(model)
    quantizer = RowQuantizer(model, runner.stats(model, matmul_inputs(model, nodes), cal.ranking, tmp_path,
                                                 external_data=False))
    config = BASE_CANDIDATES[-1]

    def probe(graph, outputs, consume):
        runner.probe(graph, outputs, cal.ranking, tmp_path, consume, external_data=False)

    errors = local_errors(quantizer, config, probe)
    assert list(errors) == nodes and all(0 < e < 0.1 for e in errors.values())
    graph = {n.name: n for n in model.graph.node}
    readers = {name: [n for n in model.graph.node if name in n.input] for n in model.graph.node for name in n.output}
    ffn_down = next(n for n in nodes if "/output/dense" in n and "attention" not in n)  # reads GELU outputs
    for node in dict.fromkeys([nodes[0], ffn_down, nodes[-1]]):
        output = graph[node].output[0]
        bias = [r.output[0] for r in readers[output] if r.op_type == "Add"]  # int8 may fold into it
        read = bias[0] if bias else output
        values = {}
        for label, candidate in (("fp32", model), ("int8", quantizer.build(config, only_nodes=[node]))):
            rows = {read: [], output: []}
            probe(candidate, list(rows) if label == "fp32" else [read], lambda name, r: rows[name].append(r.astype(np.float64)))
            values[label] = {name: np.concatenate(r) for name, r in rows.items() if r}
        error = ((values["int8"][read] - values["fp32"][read]) ** 2).sum()
        assert errors[node] == pytest.approx(error / (values["fp32"][output] ** 2).sum(), rel=1e-4), node


def test_rounded_weights_are_shared_only_between_candidates_that_share_them(bert_guard_inputs, tmp_path):
    """The weight cache across candidates gives each config what a fresh computation gives."""
    import onnx

    from zsl_onnx_export.int8.candidates import quantize_model

    bundle, cal, runner, _ = bert_guard_inputs
    model = onnx.load(str(bundle / "onnx" / "model.onnx"))
    nodes = weight_matmuls(model)
    stats = runner.stats(model, matmul_inputs(model, nodes), cal.ranking, tmp_path, external_data=False)
    quantizer = RowQuantizer(model, stats)
    configs = [replace(c, select_static=False, static_inputs=tuple(quantizer.layer_norm_inputs())) for c in BASE_CANDIDATES]
    for config in configs:
        quantizer.build(config)  # fills the cache in the order the search does
    for config in configs:
        shared = quantize_model(model, nodes, stats, config, cache=quantizer._cache)
        fresh = quantize_model(model, nodes, stats, config, cache={})
        assert shared.SerializeToString() == fresh.SerializeToString(), config.name


def test_back_off_climbs_the_ladder_then_bisects_and_coarse_graphs_skip_small_steps():
    """Keeping 11 or more MatMuls in fp32 passes: the full ladder bisects down to 11; the coarse
    one starts at a sixteenth and stops bisecting after two steps."""
    from zsl_onnx_export.int8.candidates import QuantConfig
    from zsl_onnx_export.int8.nli import NLI_LADDER
    from zsl_onnx_export.int8.search import _back_off

    class Attempts:
        def __init__(self):
            self.tried = []

        def __call__(self, config):
            self.tried.append(len(config.nodes_to_exclude))
            return type("Result", (), {"passed": len(config.nodes_to_exclude) >= 11, "config": config})()

        def say(self, message):
            pass

        def estimate(self, candidates):
            return "unknown time"

    ordered = [f"n{i}" for i in range(64)]
    for coarse, tried, kept in ((False, [1, 2, 4, 8, 16, 12, 10, 11], 11), (True, [4, 8, 16, 12, 10], 12)):
        attempts = Attempts()
        result = _back_off(attempts, QuantConfig("base"), ordered, NLI_LADDER, coarse=coarse)
        assert attempts.tried == tried and len(result.config.nodes_to_exclude) == kept


def test_large_graphs_rank_in_one_pass_and_take_no_layer_norm_scales(bert_guard_inputs, tmp_path, monkeypatch):
    import onnx

    from zsl_onnx_export.int8 import sensitivity

    monkeypatch.setattr(sensitivity, "END_TO_END_RANKING_WEIGHTS", 0)  # every graph counts as large
    bundle, _, _, reference = bert_guard_inputs
    report = _search(bert_guard_inputs, tmp_path / "int8.onnx", reference=np.roll(reference, 1, axis=1),
                     min_agreement=0.99)
    nodes = weight_matmuls(onnx.load(str(bundle / "onnx" / "model.onnx")))
    assert report.ranking == "one_pass" and sorted(n for n, _ in report.sensitivity) == sorted(nodes)
    assert report.static_base_error is None and report.static_sensitivity == []
    assert not any(c.config.static_inputs for c in report.candidates)
    assert "relative_output_error" in report.to_json()["most_sensitive_nodes"][0]


def test_guard_keeps_the_first_candidate_that_passes(bert_guard_inputs, tmp_path):
    import onnx

    bundle, cal, runner, reference = bert_guard_inputs
    report = _search(bert_guard_inputs, tmp_path / "int8.onnx", min_agreement=0.5, measure_speed=True)
    assert len(report.candidates) == 1 and report.chosen is report.candidates[0] and report.chosen.passed
    assert report.chosen.heldout_agreement >= 0.5 and report.sensitivity == []
    assert report.chosen.speedup is not None and report.chosen.speedup > 0  # interleaved passes ran
    chosen = onnx.load(str(tmp_path / "int8.onnx"))
    ops = [n.op_type for n in chosen.graph.node]
    assert ops.count("MatMulIntegerToFloat") == len(weight_matmuls(onnx.load(str(bundle / "onnx" / "model.onnx"))))
    assert "DynamicQuantizeLinear" not in ops  # no per-tensor (batch-wide) activation scales
    assert saturation_free(chosen) == []
    # the first candidate: each FFN input (a LayerNorm output one MatMul reads) was tried alone with a
    # calibrated scale, and those within the tolerance keep it
    fp32 = onnx.load(str(bundle / "onnx" / "model.onnx"))
    ffn_inputs = [a for a in matmul_inputs(fp32, weight_matmuls(fp32)) if "attention/output/LayerNorm" in a]
    assert [a for a, _ in report.static_sensitivity] == ffn_inputs and report.static_base_error is not None
    static_inputs = report.chosen.config.static_inputs
    assert static_inputs == within_tolerance(report.static_base_error, report.static_sensitivity)
    assert static_inputs, "the tiny model's FFN inputs should take a calibrated scale"
    # calibrated scales put the bias in the GEMM: query/key/value, and the FFN MatMuls reading a chosen input
    fused = {n.name for n in chosen.graph.node if n.op_type == "MatMulIntegerToFloat" and len(n.input) == 7}
    readers = {n.name + "/int8" for n in fp32.graph.node if n.op_type == "MatMul" and n.input[0] in static_inputs}
    attention = {n for n in fused if n.split("/")[-3] in ("query", "key", "value")}
    assert attention and readers and fused == attention | readers


def test_a_layer_norm_output_keeps_a_calibrated_scale_only_within_the_tolerance():
    base = 0.02
    sensitivity = [("a", base * 0.9), ("b", base * (1 + STATIC_TOLERANCE)), ("c", base * (1 + 2 * STATIC_TOLERANCE))]
    assert within_tolerance(base, sensitivity) == ("a", "b")
    assert within_tolerance(base, sensitivity, tolerance=0.0) == ("a",)
    assert within_tolerance(base, []) == ()


def test_guard_scores_through_the_runtime_loop(bert_guard_inputs, tmp_path):
    """The guard's logits for a candidate are the classifier's own, bit for bit: same
    tokenization, sorting, batch size and CPU token cap."""
    import shutil

    bundle, cal, runner, _ = bert_guard_inputs
    _search(bert_guard_inputs, tmp_path / "int8.onnx", min_agreement=0.5)
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    shutil.copy(tmp_path / "int8.onnx", copy / "onnx" / "model.onnx")
    classifier = ZeroShotClassifier.from_pretrained(copy, variant="fp32", verify=False, max_length=128)
    assert np.array_equal(runner.logits(copy / "onnx" / "model.onnx"), classifier.pair_logits(cal.premises, cal.hypotheses))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_ships_a_guarded_int8_within_tolerance(tiny_models, family):
    bundle = tiny_models(family).bundle
    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    int8 = ZeroShotClassifier.from_pretrained(bundle)
    fp32 = ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
    assert int8.variant == "int8"
    guard = manifest["variants"]["int8"]["quantization"]["guard"]
    chosen = next(c for c in guard["candidates"] if c["name"] == guard["chosen"])
    assert chosen["passed"] and chosen["heldout_agreement"] >= 0.99
    assert int8.fidelity["calibration_agreement"] == chosen["heldout_agreement"] and int8.fidelity["guard_passed"]
    texts = [c[0] for c in PARITY_CASES if isinstance(c[0], str)]
    diff = np.abs(int8.scores(texts, LABELS) - fp32.scores(texts, LABELS))
    assert diff.max() <= 0.02, f"int8 scores drift by {diff.max():.4f} from fp32"


@pytest.mark.parametrize("family", ["bert", "bart"])
def test_fp16_variant_has_fp32_io_and_follows_fp32(tiny_models, small_calibration, tmp_path, family):
    import onnx

    out = tmp_path / "bundle"
    export_bundle(tiny_models(family).source, out, quantize_int8=False, fp16=True, calibration_file=small_calibration)
    graph = onnx.load(str(out / "onnx" / "model_fp16.onnx")).graph
    assert {i.type.tensor_type.elem_type for i in graph.input} == {onnx.TensorProto.INT64}
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)
    fp16 = ZeroShotClassifier.from_pretrained(out, variant="fp16")
    fp32 = ZeroShotClassifier.from_pretrained(out, variant="fp32")
    assert fp16.fidelity["calibration_agreement"] >= 0.99 and fp16.fidelity["checked_on"] == "CPUExecutionProvider"
    texts = [c[0] for c in PARITY_CASES if isinstance(c[0], str)]
    assert np.abs(fp16.scores(texts, LABELS) - fp32.scores(texts, LABELS)).max() <= 0.01
    assert ZeroShotClassifier.from_pretrained(out).variant == "fp32"  # CPU never picks fp16 by default


def test_cli_guard_options(tiny_models, tmp_path, capsys):
    source = tiny_models("bert").source
    with pytest.raises(SystemExit):
        main([str(source), "-o", str(tmp_path / "x"), "--min-agreement", "1.5"])
    assert "fraction in (0, 1]" in capsys.readouterr().err
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"Sentence {i} about something." for i in range(50)))
    assert main([str(source), "-o", str(tmp_path / "y"), "--calibration-file", str(texts)]) == 1
    assert "--calibration-labels" in capsys.readouterr().err
    out = tmp_path / "z"
    assert main([str(source), "-o", str(out), "--calibration-file", str(texts), "--calibration-labels", "a,b,c", "--min-agreement", "0.9"]) == 0
    guard = json.loads((out / "zsl_onnx.json").read_text())["variants"]["int8"]["quantization"]["guard"]
    assert guard["calibration"] == {"source": str(texts), "pairs": 150, "ranking_pairs": 50, "heldout_pairs": 100}
    assert guard["min_agreement"] == 0.9
