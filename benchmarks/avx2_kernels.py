"""Run a benchmark with onnxruntime's AVX2 kernels on a CPU that has AVX512-VNNI (or AMX).

onnxruntime (MLAS) picks its GEMM kernels from CPUID once, with no setting to override it, so
an AVX2-only CPU's int8 speed cannot be measured on a newer machine as it is. This script makes
a copy of the installed onnxruntime whose CPUID and XGETBV instructions report no AVX512, VNNI
or AMX (``cpuid_mask.c`` answers them), then runs a command with that copy first on the path:

    python benchmarks/avx2_kernels.py prepare build/avx2-ort
    python benchmarks/avx2_kernels.py run build/avx2-ort -- python benchmarks/bench_int8.py --bundle bundles/minilm

Every kernel then is the one an AVX2 + FMA machine runs (u8 x s8 through ``vpmaddubsw``, fp32
through the AVX2 SGEMM). The core is still this machine's, so the numbers are "AVX2 code on
this CPU", not a measurement of an older CPU. ``benchmarks/common.environment`` records the
mask next to the CPU. Needs Linux x86-64, a C compiler and objdump (binutils).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
# instruction -> (its bytes, the bytes it becomes: int3 then a same-length no-op the handler reads)
PATCHES = {"cpuid": (b"\x0f\xa2", b"\xcc\x90"), "xgetbv": (b"\x0f\x01\xd0", b"\xcc\x66\x90")}


def text_offset(library: Path) -> int:
    """File offset minus address of the .text section (0 for the usual layout)."""
    out = subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == ".text":
            return int(fields[5], 16) - int(fields[3], 16)
    raise SystemExit(f"no .text section in {library}")


def instruction_sites(library: Path) -> list[tuple[int, str]]:
    """(address, mnemonic) of every cpuid and xgetbv instruction in ``library``."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True)
    pattern = re.compile(r"^\s*([0-9a-f]+):\s+(cpuid|xgetbv)\s*$")
    return [(int(m.group(1), 16), m.group(2)) for m in map(pattern.match, out.stdout.splitlines()) if m]


def patch(library: Path) -> int:
    """Rewrite ``library`` in place; returns the number of instructions patched."""
    data = bytearray(library.read_bytes())
    shift = text_offset(library)
    sites = instruction_sites(library)
    for address, mnemonic in sites:
        original, replacement = PATCHES[mnemonic]
        at = address + shift
        if bytes(data[at : at + len(original)]) != original:
            raise SystemExit(f"unexpected bytes at {at:#x} ({mnemonic}) in {library}")
        data[at : at + len(original)] = replacement
    library.write_bytes(bytes(data))
    return len(sites)


def prepare(target: Path) -> None:
    spec = find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        raise SystemExit("onnxruntime is not installed")
    source = Path(spec.origin).parent
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target / "onnxruntime")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", str(target / "cpuid_mask.so"),
                    str(HERE / "cpuid_mask.c")], check=True)
    for library in sorted((target / "onnxruntime" / "capi").glob("*.so*")):
        if library.is_file() and not library.is_symlink():
            print(f"{library.name}: {patch(library)} cpuid/xgetbv instructions now answered by cpuid_mask.so")


def run(target: Path, command: list[str]) -> int:
    if not (target / "cpuid_mask.so").exists():
        raise SystemExit(f"{target} is not prepared; run: python {Path(__file__).name} prepare {target}")
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(target.resolve() / "cpuid_mask.so"), env.get("LD_PRELOAD")]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target.resolve()), env.get("PYTHONPATH")]))
    return subprocess.run(command, env=env).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prepare", help="copy onnxruntime to DIR and patch it")
    p.add_argument("dir", type=Path)
    r = sub.add_parser("run", help="run a command with the patched copy (after --)")
    r.add_argument("dir", type=Path)
    r.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.mode == "prepare":
        prepare(args.dir)
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    sys.exit(run(args.dir, command))


if __name__ == "__main__":
    main()
