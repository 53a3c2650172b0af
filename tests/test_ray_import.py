"""zsl_onnx.ray imports Ray only when used, and names the extra when Ray is missing."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
{setup}
import zsl_onnx, zsl_onnx.ray
assert sys.modules.get("ray") is None, "importing zsl_onnx.ray imported ray"
try:
    zsl_onnx.ray.require_ray()
except zsl_onnx.InvalidInputError as exc:
    print(exc)
"""


def run(setup: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK.format(setup=setup)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_package_and_module_does_not_import_ray():
    run("")


def test_missing_ray_is_an_error_naming_the_extra():
    assert "pip install 'zsl-onnx[ray]'" in run("sys.modules['ray'] = None  # as if not installed")
