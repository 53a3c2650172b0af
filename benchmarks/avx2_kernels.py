"""Run a benchmark with onnxruntime's AVX2 kernels on a CPU that has AVX512-VNNI (or AMX).

onnxruntime (MLAS) picks its GEMM kernels from CPUID once, with no setting to override it, so
an AVX2-only CPU's int8 speed cannot be measured on a newer machine as it is. This script makes
a copy of the installed onnxruntime whose CPUID and XGETBV instructions report no AVX512, VNNI
or AMX (``cpuid_mask.c`` answers them), then runs a command with that copy first on the path:

    python benchmarks/avx2_kernels.py prepare build/avx2-ort
    python benchmarks/avx2_kernels.py run build/avx2-ort -- python benchmarks/bench_int8.py --bundle bundles/minilm

Every onnxruntime kernel then is the one an AVX2 + FMA machine runs (u8 x s8 through
``vpmaddubsw``, fp32 through the AVX2 SGEMM); glibc, numpy and Python still dispatch on the real
CPU. The core is still this machine's, so the numbers are "AVX2 code on this CPU", not a
measurement of an older CPU. ``benchmarks/common.environment`` records the mask next to the CPU
(only when the mask answered onnxruntime's CPUID). Needs Linux x86-64, a C compiler and objdump
(binutils).
"""

from __future__ import annotations

import argparse
import json
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
MARKER = "avx2-kernels.json"  # written last by prepare: a directory without it is not ours / not done


def section_offsets(library: Path) -> dict[str, int]:
    """File offset minus address, per section (objdump -h)."""
    out = subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout
    offsets = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0].isdigit():
            offsets[fields[1]] = int(fields[5], 16) - int(fields[3], 16)
    return offsets


def instruction_sites(library: Path) -> list[tuple[str, int, str]]:
    """(section, address, mnemonic) of every cpuid and xgetbv instruction objdump decodes."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True)
    section, sites = "", []
    for line in out.stdout.splitlines():
        if line.startswith("Disassembly of section "):
            section = line.removeprefix("Disassembly of section ").rstrip(":")
        elif match := re.match(r"^\s*([0-9a-f]+):\s+(cpuid|xgetbv)\s*$", line):
            sites.append((section, int(match.group(1), 16), match.group(2)))
    return sites


def patch(library: Path) -> int:
    """Rewrite ``library`` in place (every site checked first); returns the number patched."""
    data = bytearray(library.read_bytes())
    offsets = section_offsets(library)
    sites = instruction_sites(library)
    for section, address, mnemonic in sites:
        original, replacement = PATCHES[mnemonic]
        at = address + offsets[section]
        if bytes(data[at : at + len(original)]) != original:
            raise SystemExit(f"unexpected bytes at {at:#x} ({mnemonic} in {section}) of {library}")
        data[at : at + len(original)] = replacement
    library.write_bytes(bytes(data))
    return len(sites)


def prepare(target: Path) -> None:
    """Copy the installed onnxruntime into ``target``, patch its libraries, build the mask."""
    spec = find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        raise SystemExit("onnxruntime is not installed")
    if target.exists() and any(target.iterdir()) and not (target / MARKER).exists():
        raise SystemExit(f"{target} exists and was not made by this script; name an empty or new directory")
    (target / MARKER).unlink(missing_ok=True)
    (target / "cpuid_mask.so").unlink(missing_ok=True)
    shutil.rmtree(target / "onnxruntime", ignore_errors=True)
    shutil.copytree(Path(spec.origin).parent, target / "onnxruntime")
    counts = {}
    for library in sorted((target / "onnxruntime" / "capi").glob("*.so*")):
        if library.is_file() and not library.is_symlink():
            counts[library.name] = patch(library)
            print(f"{library.name}: {counts[library.name]} cpuid/xgetbv instructions now answered by cpuid_mask.so")
    if not any(n for name, n in counts.items() if name.startswith("onnxruntime_pybind11_state")):
        raise SystemExit("no cpuid in onnxruntime's Python library: this onnxruntime cannot be masked this way")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", str(target / "cpuid_mask.so"),
                    str(HERE / "cpuid_mask.c")], check=True)
    (target / MARKER).write_text(json.dumps({"patched": counts}, indent=2) + "\n", encoding="utf-8")


def run(target: Path, command: list[str]) -> int:
    """Run ``command`` with the patched onnxruntime first on the path and the mask preloaded."""
    if not (target / MARKER).exists():
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
