"""zsl-export: refusals, options, validation that really fails, and the console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.export

torch = pytest.importorskip("torch")
from zsl_onnx_export import ExportError, ExportValidationError, export_bundle  # noqa: E402
from zsl_onnx_export._cli import main  # noqa: E402
from tiny_models import build_model  # noqa: E402

from zsl_onnx import NoEntailmentLabelError, ZeroShotClassifier  # noqa: E402


@pytest.fixture(scope="module")
def bert_source(tiny_models):
    return tiny_models("bert").source


def test_refuses_a_model_without_entailment_label_listing_its_labels(tmp_path, capsys):
    source = build_model("bert", tmp_path / "sentiment", labels=("negative", "positive"))
    assert main([str(source), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no entailment label" in err and "['negative', 'positive']" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(NoEntailmentLabelError):
        export_bundle(source, tmp_path / "out")


def test_refuses_a_non_empty_output_unless_overwrite(bert_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_bundle(bert_source, out)
    assert (out / "keep.txt").read_text() == "mine"
    export_bundle(bert_source, out, overwrite=True, quantize_int8=False)
    assert not (out / "keep.txt").exists() and (out / "zsl_onnx.json").exists()


def test_failed_validation_writes_nothing(bert_source, tmp_path):
    # atol=0: the fp32 graph's float rounding (~1e-7) already exceeds it, so validation must fail
    with pytest.raises(ExportValidationError, match="differs from PyTorch"):
        export_bundle(bert_source, tmp_path / "out", atol=0.0, quantize_int8=False)
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging dir


def test_validation_catches_a_graph_that_is_wrong(bert_source, tmp_path, monkeypatch):
    """Swap attention_mask and token_type_ids at the session: inputs bound by position, the classic export mistake."""
    from zsl_onnx import _session

    real_run = _session.LogitsSession.run

    def swapped(self, batch):
        import dataclasses

        return real_run(self, dataclasses.replace(batch, attention_mask=batch.token_type_ids, token_type_ids=batch.attention_mask))

    monkeypatch.setattr(_session.LogitsSession, "run", swapped)
    with pytest.raises(ExportValidationError):
        export_bundle(bert_source, tmp_path / "out", quantize_int8=False)


def test_options_reach_the_manifest(bert_source, tmp_path):
    out = tmp_path / "out"
    assert main([str(bert_source), "-o", str(out), "--quantize", "none", "--template", "Este ejemplo es {}."]) == 0
    manifest = json.loads((out / "zsl_onnx.json").read_text())
    assert list(manifest["variants"]) == ["fp32"]
    assert manifest["hypothesis_template"] == "Este ejemplo es {}."
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["labels"]["entailment_index"] == 0 and manifest["max_length"] == 128
    assert {"torch", "transformers", "optimum-onnx", "onnxruntime"} <= set(manifest["tools"])
    clf = ZeroShotClassifier.from_pretrained(out)
    assert clf.variant == "fp32" and clf.hypothesis_template == "Este ejemplo es {}."


def test_bad_template_is_refused_before_any_work(bert_source, tmp_path):
    with pytest.raises(ValueError, match="placeholder"):
        export_bundle(bert_source, tmp_path / "out", template="No placeholder.")


def test_console_script_runs_end_to_end(bert_source, small_calibration, tmp_path):
    beside_python = Path(sys.executable).parent / "zsl-export"
    exe = str(beside_python) if beside_python.exists() else shutil.which("zsl-export")
    assert exe, "zsl-export is not installed: pip install -e '.[export]'"
    done = subprocess.run(
        [exe, str(bert_source), "-o", str(tmp_path / "b"), "--calibration-file", str(small_calibration)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for step in ("[1/6] load", "[2/6] export", "[3/6] validate", "[4/6] quantize", "[5/6] fp16", "[6/6] write"):
        assert step in done.stderr
    assert "candidate" in done.stderr and "agreement" in done.stderr  # the guard's table
    assert (tmp_path / "b" / "onnx" / "model_quantized.onnx").is_file()
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    for option in ("--trust-remote-code", "--revision", "--min-agreement", "--calibration-file", "--fp16"):
        assert option in help_text


def test_sentencepiece_only_source_gets_a_tokenizer_json(tiny_models):
    model = tiny_models("deberta-v3")
    assert not (model.source / "tokenizer.json").exists() and (model.source / "spm.model").exists()
    assert (model.bundle / "tokenizer.json").is_file()
    manifest = json.loads((model.bundle / "zsl_onnx.json").read_text())
    assert manifest["inputs"] == ["input_ids", "attention_mask"]  # DeBERTa has no token types


def test_hub_id_is_snapshotted_and_its_commit_recorded(bert_source, tmp_path, monkeypatch):
    from test_bundle import COMMIT, FakeHub

    hub = FakeHub(bert_source, tmp_path / "cache").install(monkeypatch)
    result = export_bundle("org/tiny-nli", tmp_path / "out", revision="v1", quantize_int8=False, hub_timeout=4.0)
    assert any(name.endswith(".safetensors") for name in hub.fetched) and "config.json" in hub.fetched
    assert not any(name.endswith(".py") for name in hub.fetched)
    assert {timeout for _, timeout in hub.timeouts} == {4.0}
    assert result.manifest["source"] == {"model": "org/tiny-nli", "requested_revision": "v1", "revision": COMMIT}


def test_cli_hub_timeout_reaches_every_hub_request(bert_source, tmp_path, monkeypatch, capsys):
    from test_bundle import FakeHub

    hub = FakeHub(bert_source, tmp_path / "cache").install(monkeypatch)
    assert main(["org/tiny-nli", "-o", str(tmp_path / "out"), "--quantize", "none", "--hub-timeout", "2.5"]) == 0
    assert hub.timeouts and {timeout for _, timeout in hub.timeouts} == {2.5}
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            main(["org/tiny-nli", "-o", str(tmp_path / "other"), "--hub-timeout", bad])
        assert "positive number of seconds" in capsys.readouterr().err
