"""benchmarks/avx2_kernels.py: a patched library's CPUID and XGETBV answer as an AVX2-only CPU.

A tiny shared library stands in for onnxruntime: it is patched like onnxruntime's, loaded
beside cpuid_mask.so in a child process, and must report no AVX512 (CPUID leaf 7) and no
AVX512 state (XCR0), while the unpatched library still reports the real values.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PROBE = r"""
#include <cpuid.h>
unsigned int leaf7_ebx(void) { unsigned a, b, c, d; __cpuid_count(7, 0, a, b, c, d); return b; }
unsigned long long xcr0(void) { unsigned lo, hi; __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
                                return ((unsigned long long)hi << 32) | lo; }
"""
READ = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.xcr0.restype = ctypes.c_ulonglong
print(lib.leaf7_ebx(), lib.xcr0())
"""

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64")
    or not (shutil.which("cc") and shutil.which("objdump")),
    reason="the CPUID mask needs Linux x86-64 with a C compiler and objdump",
)


def read(library: Path, preload: Path | None) -> tuple[int, int]:
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = str(preload)
    out = subprocess.run([sys.executable, "-c", READ, str(library)], capture_output=True, text=True, check=True, env=env)
    ebx, xcr0 = map(int, out.stdout.split())
    return ebx, xcr0


def test_patched_library_sees_no_avx512_and_the_rest_of_the_cpu_unchanged(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from avx2_kernels import patch

    (tmp_path / "probe.c").write_text(PROBE)
    real, masked = tmp_path / "real.so", tmp_path / "masked.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(real), str(tmp_path / "probe.c")], check=True)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(tmp_path / "mask.so"), str(BENCHMARKS / "cpuid_mask.c")],
                   check=True)
    shutil.copy(real, masked)
    assert patch(masked) == 2  # one cpuid, one xgetbv
    assert masked.read_bytes() != real.read_bytes()

    ebx, xcr0 = read(real, None)
    assert read(real, tmp_path / "mask.so") == (ebx, xcr0)  # the mask alone changes nothing unpatched
    ebx_masked, xcr0_masked = read(masked, tmp_path / "mask.so")
    avx512 = (1 << 16) | (1 << 30) | (1 << 31)  # AVX512 F, BW, VL
    assert ebx_masked & avx512 == 0 and xcr0_masked & 0xE0 == 0
    assert ebx_masked == ebx & ~0xDC230000 & 0xFFFFFFFF  # only the AVX512 bits go
    assert xcr0_masked == xcr0 & ~((1 << 5) | (1 << 6) | (1 << 7) | (1 << 17) | (1 << 18))
    assert ebx_masked & (1 << 5) == ebx & (1 << 5)  # AVX2 stays as the CPU has it


CHECK_PAIRS = """
import sys
import numpy as np, onnxruntime as ort
a = np.load(sys.argv[1])
for path, levels in zip(sys.argv[2::2], sys.argv[3::2]):
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"a": a})[0]
    print(int((y == a.astype(np.int64) @ np.load(levels).astype(np.int64)).all()))
"""


@pytest.mark.slow
def test_avx2_kernels_are_exact_on_pair_bounded_weights_and_saturate_beyond(tmp_path: Path) -> None:
    """onnxruntime's AVX2 u8 x s8 GEMM adds weight rows 2i and 2i+1 in int16: weights whose pairs
    stay within PAIR_LIMIT give exact integer products, a pair of 127s does not."""
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    from zsl_onnx_export.int8.weights import PAIR_LIMIT, pair_sums

    rng = np.random.default_rng(0)
    k, n = 67, 16  # odd K: the last row stands alone
    bounded = rng.integers(-127, 128, (k, n))
    first, second = bounded[0 : k - 1 : 2], bounded[1::2]
    bounded[1::2] = np.sign(second) * np.minimum(np.abs(second), PAIR_LIMIT - np.abs(first))
    assert pair_sums(bounded).max() <= PAIR_LIMIT and np.abs(bounded).max() == 127
    paired_127 = np.zeros((k, n), dtype=np.int64)
    paired_127[0:2] = 127  # one pair, rows 0 and 1: 2 x 255 x 127 overflows int16
    args = []
    for name, levels in (("bounded", bounded), ("paired_127", paired_127)):
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b", "zero"], ["y"])], name,
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, k])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
            [numpy_helper.from_array(levels.astype(np.int8), "b"), numpy_helper.from_array(np.array(0, np.uint8), "zero")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        np.save(tmp_path / f"{name}.npy", levels)
        args += [str(tmp_path / f"{name}.onnx"), str(tmp_path / f"{name}.npy")]
    activations = rng.integers(200, 256, (9, k)).astype(np.uint8)
    activations[0] = 255
    np.save(tmp_path / "a.npy", activations)
    (tmp_path / "check.py").write_text(CHECK_PAIRS)
    script = BENCHMARKS / "avx2_kernels.py"
    subprocess.run([sys.executable, str(script), "prepare", str(tmp_path / "ort")], check=True, capture_output=True)
    out = subprocess.run(
        [sys.executable, str(script), "run", str(tmp_path / "ort"), "--", sys.executable, str(tmp_path / "check.py"),
         str(tmp_path / "a.npy"), *args], check=True, capture_output=True, text=True,
    )
    assert out.stdout.split() == ["1", "0"]  # bounded pairs exact; the 127 pair saturated, so the mask is on
