"""The runtime must work in a process where torch and transformers cannot even be imported."""

import json
import subprocess
import sys

import pytest

from zsl_onnx import ZeroShotClassifier

SCRIPT = r"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "optimum"}:
            raise ImportError(f"{name} is blocked in this process")
        return None

sys.meta_path.insert(0, Block())
import zsl_onnx
clf = zsl_onnx.ZeroShotClassifier.from_pretrained(sys.argv[1])
result = clf(["A man is playing a guitar.", "Stocks fell."], ["music", "economy"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "optimum"})
print(json.dumps({"result": result, "heavy": heavy, "variant": clf.variant}))
"""


def test_runtime_imports_and_classifies_without_torch(bert_bundle):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(bert_bundle)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["heavy"] == []
    expected = ZeroShotClassifier.from_pretrained(bert_bundle)(
        ["A man is playing a guitar.", "Stocks fell."], ["music", "economy"]
    )
    assert [r["labels"] for r in out["result"]] == [r["labels"] for r in expected]
    for got, want in zip(out["result"], expected):
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)


def test_python_m_zsl_onnx_prints_version_and_providers():
    done = subprocess.run([sys.executable, "-m", "zsl_onnx"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "zsl-onnx 0." in done.stdout and "CPUExecutionProvider" in done.stdout
