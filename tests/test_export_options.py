"""ExportOptions: one spelling for the CLI and the API; the fp16 pass mark; a quiet export log."""

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.export

pytest.importorskip("torch")
from zsl_onnx_export import ExportError, ExportOptions, ExportValidationError  # noqa: E402
from zsl_onnx_export import _fp16  # noqa: E402
from zsl_onnx_export._api import _options  # noqa: E402
from zsl_onnx_export._cli import build_parser, options_from_args  # noqa: E402


def test_the_cli_builds_the_options_the_api_builds_by_default(tmp_path):
    cli = options_from_args(build_parser().parse_args(["org/model", "-o", str(tmp_path / "out")]))
    assert cli == ExportOptions("org/model", tmp_path / "out")
    assert cli == _options("org/model", str(tmp_path / "out"), {})  # export_bundle's keyword form


def test_every_cli_flag_lands_in_its_option(tmp_path):
    args = build_parser().parse_args([
        "org/model", "-o", str(tmp_path / "out"), "--revision", "v1", "--trust-remote-code", "--template", "It is {}.",
        "--quantize", "none", "--min-agreement", "0.95", "--calibration-file", "pairs.jsonl",
        "--calibration-labels", "a, b", "--keep-lossy-int8", "--fp16", "--fp16-min-agreement", "0.9",
        "--threads", "2", "--no-validate", "--atol", "0.01", "--overwrite", "--cache-dir", "cache", "--offline",
        "--hub-timeout", "30",
    ])
    expected = ExportOptions(
        "org/model", tmp_path / "out", revision="v1", trust_remote_code=True, template="It is {}.",
        quantize_int8=False, min_agreement=0.95, calibration_file="pairs.jsonl", calibration_labels=["a", "b"],
        keep_lossy_int8=True, fp16=True, fp16_min_agreement=0.9, threads=2, validate=False, atol=0.01,
        overwrite=True, cache_dir="cache", local_files_only=True, hub_timeout=30.0,
    )
    assert options_from_args(args) == expected
    assert _options("org/model", tmp_path / "out", {f.name: getattr(expected, f.name) for f in fields(expected)
                                                      if f.name not in ("model", "output")}) == expected


def test_export_bundle_takes_options_or_keywords_not_both(tmp_path):
    options = ExportOptions("org/model", tmp_path / "out", fp16=True)
    assert _options(options, None, {}) is options
    with pytest.raises(TypeError, match="ExportOptions alone"):
        _options(options, None, {"fp16": False})
    with pytest.raises(TypeError, match="unexpected keyword"):
        _options("org/model", tmp_path / "out", {"fp16_agreement": 0.9})


def test_the_fp16_pass_mark_is_its_own_option(tmp_path, capsys):
    assert ExportOptions("m", tmp_path).fp16_min_agreement == 0.99
    with pytest.raises(ExportError, match="fp16_min_agreement"):
        ExportOptions("m", tmp_path, fp16_min_agreement=1.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m", "-o", str(tmp_path), "--fp16-min-agreement", "0"])
    assert "fraction in (0, 1]" in capsys.readouterr().err


class _Reached(Exception):
    """Raised where the fp16 step goes on past its agreement check."""


def _fp16_job(tmp_path, **options):
    reference = np.tile([[2.0, 1.0, 0.0]], (10, 1))
    fp16 = reference.copy()
    fp16[0] = [0.0, 1.0, 2.0]  # 9 of 10 held-out pairs agree with fp32
    runner = SimpleNamespace(logits=lambda path: fp16)

    def compare(variant):
        raise _Reached(variant)

    return SimpleNamespace(
        options=ExportOptions("m", tmp_path / "out", fp16=True, **options), stage=lambda name, text: None,
        staging=tmp_path, path=lambda relative: tmp_path / relative, external_data=False, calibration_run=lambda: (runner, reference),
        calibration=SimpleNamespace(heldout=np.arange(10)), compare=compare,
    )


def test_fp16_is_judged_by_fp16_min_agreement_not_the_int8_guards(tmp_path, monkeypatch):
    monkeypatch.setattr(_fp16, "convert_fp16", lambda source, target, external_data: None)
    with pytest.raises(ExportValidationError, match=r"90\.00% .*need 95\.0%"):
        _fp16.convert_to_fp16(_fp16_job(tmp_path, min_agreement=0.5, fp16_min_agreement=0.95))
    with pytest.raises(_Reached):  # passes its own 0.85 although the int8 guard's bar is 1.0
        _fp16.convert_to_fp16(_fp16_job(tmp_path, min_agreement=1.0, fp16_min_agreement=0.85))


NOISE = re.compile(r"TracerWarning|DeprecationWarning|FutureWarning|accelerate|is deprecated", re.IGNORECASE)


@pytest.mark.parametrize("kind", ["nli", "embedding"])
def test_the_export_log_holds_our_steps_and_no_third_party_noise(tiny_models, small_calibration, tmp_path, kind):
    if kind == "nli":
        source, extra = tiny_models("bert", int8=False).source, ["--calibration-file", str(small_calibration)]
    else:
        from embedding_models import build_sentence_transformer

        source, extra = build_sentence_transformer("bert", tmp_path / "source", seed=3), []
    done = subprocess.run(
        [sys.executable, "-m", "zsl_onnx_export._cli", str(source), "-o", str(tmp_path / "bundle"),
         "--quantize", "none", "--threads", "1", *extra],
        capture_output=True, text=True, timeout=600,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert not NOISE.search(log), log
    steps = [(int(n), int(total)) for n, total in re.findall(r"^\[(\d+)/(\d+)\] ", log, re.MULTILINE)]
    assert steps == [(n, 6) for n in range(1, 7)], log
    assert Path(tmp_path / "bundle" / "zsl_onnx.json").is_file()


def test_third_party_settings_are_restored_after_an_export_scope():
    import warnings

    from transformers.utils import logging as hf_logging

    from zsl_onnx_export._quiet import quiet_third_party

    before_filters, before_level = list(warnings.filters), hf_logging.get_verbosity()
    with quiet_third_party():
        assert hf_logging.get_verbosity() >= hf_logging.ERROR
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("ours", UserWarning)  # a real warning still shows
        assert [str(w.message) for w in seen] == ["ours"]
    assert warnings.filters == before_filters and hf_logging.get_verbosity() == before_level
