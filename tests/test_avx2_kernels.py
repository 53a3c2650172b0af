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
