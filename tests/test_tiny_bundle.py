"""The committed tiny bundle (data/tiny-bert) is what make_tiny_bundle.py builds from today's code."""

import json

import numpy as np
import pytest
from conftest import TINY_BUNDLE

from zsl_onnx import ZeroShotClassifier

pytestmark = pytest.mark.export

TEXTS = ["A man is playing a guitar on stage.", "Stocks fell sharply.", "El gobierno anunció nuevas medidas."]
LABELS = ["music", "economy", "sports", "politics"]


def test_rebuilding_the_tiny_bundle_gives_the_committed_results(tmp_path):
    pytest.importorskip("torch")
    from make_tiny_bundle import build_tiny_bundle

    rebuilt = build_tiny_bundle(tmp_path / "tiny-bert")
    files = sorted(p.relative_to(TINY_BUNDLE).as_posix() for p in TINY_BUNDLE.rglob("*") if p.is_file())
    assert sorted(p.relative_to(rebuilt).as_posix() for p in rebuilt.rglob("*") if p.is_file()) == files
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        assert (rebuilt / name).read_text() == (TINY_BUNDLE / name).read_text(), name
    committed, fresh = (json.loads((d / "zsl_onnx.json").read_text()) for d in (TINY_BUNDLE, rebuilt))
    for key in ("format_version", "source", "labels", "hypothesis_template", "max_length", "inputs"):
        assert fresh[key] == committed[key], key
    guards = [m["variants"]["int8"]["quantization"]["guard"] for m in (committed, fresh)]
    assert guards[0]["chosen"] == guards[1]["chosen"] and guards[0]["calibration"] == guards[1]["calibration"]
    for variant in ("fp32", "int8"):
        old = ZeroShotClassifier.from_pretrained(TINY_BUNDLE, variant=variant)
        new = ZeroShotClassifier.from_pretrained(rebuilt, variant=variant)
        np.testing.assert_allclose(new.scores(TEXTS, LABELS), old.scores(TEXTS, LABELS), rtol=0, atol=1e-5)
