"""Does an int8 bundle give the same answers on a CPU without AVX512-VNNI?

onnxruntime picks its int8 GEMM kernel from CPUID. Without VNNI (AVX2-only CPUs) the u8 x s8
kernel adds pairs of products in int16 with saturation (vpmaddubsw), so a graph whose weights
are too large gets different integers there. The guard's ``saturation_free`` check says the
shipped per-row int8 cannot saturate; this script measures it: dump the logits of each int8
backend on one machine, dump them again on another (or on this one under ``qemu-x86_64 -cpu
max``, whose emulated CPU has AVX2 and FMA but no AVX512, so onnxruntime takes its AVX2 paths),
and compare.

Usage:
    python benchmarks/kernel_portability.py dump --bundle bundles/minilm --fp32 -o native.npz
    qemu-x86_64 -cpu max $(which python) benchmarks/kernel_portability.py dump --bundle bundles/minilm -o avx2.npz
    python benchmarks/kernel_portability.py compare native.npz avx2.npz --note "under qemu-x86_64 -cpu max"

Emulation is far slower than the real CPU (hence ``--sick-limit``); its speed means nothing,
its integers are the kernels' own. The ISA recorded with each dump is what the process sees
(numpy's CPUID-based feature table, or the mask of ``avx2_kernels.py``), not /proc/cpuinfo,
which qemu does not rewrite. Under ``avx2_kernels.py`` the logits were bit-identical to qemu's,
so either route runs the AVX2 kernels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from bench_int8 import dynamic_int8_bundle
from common import RESULTS, cpu_class, cpu_info, isa_mask, sick_test, write_results
from zsl_onnx import ZeroShotClassifier
from zsl_onnx_export.internals import builtin_calibration

_FEATURES = ("AVX2", "FMA3", "AVX512F", "AVX512_VNNI", "AVX512VNNI", "AVX512_SPR")


def seen_isa() -> list[str]:
    """The SIMD features this process's CPUID reports (what onnxruntime's dispatch sees too)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    seen = [name for name in _FEATURES if features.get(name)]
    if isa_mask() == "avx2":  # avx2_kernels.py hides the rest from onnxruntime (numpy still sees it)
        seen = [name for name in seen if name in ("AVX2", "FMA3")] + ["(onnxruntime CPUID masked to AVX2)"]
    return seen


def pairs(sick_limit: int) -> tuple[list[str], list[str]]:
    """The guard's held-out calibration pairs, then the first ``sick_limit`` SICK test pairs."""
    calibration = builtin_calibration()
    premises = [calibration.premises[i] for i in calibration.heldout]
    hypotheses = [calibration.hypotheses[i] for i in calibration.heldout]
    sick = sick_test()
    return premises + sick.premises[:sick_limit], hypotheses + sick.hypotheses[:sick_limit]


def dump(args: argparse.Namespace) -> None:
    """Logits of each backend on the same pairs, with the ISA this process sees, to one .npz."""
    premises, hypotheses = pairs(args.sick_limit)
    logits: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"int8 per-row": (args.bundle, "int8"), "int8 quantize_dynamic": (dynamic_int8_bundle(args.bundle, Path(tmp)), "int8")}
        if args.fp32:
            backends = {"fp32": (args.bundle, "fp32"), **backends}
        for name, (bundle, variant) in backends.items():
            clf = ZeroShotClassifier.from_pretrained(bundle, variant=variant, threads=args.threads, verify=False)
            logits[name] = clf.pair_logits(premises, hypotheses)
            print(name, logits[name].shape, flush=True)
    meta = {"isa_seen": seen_isa(), "cpu": cpu_info()[0], "pairs": len(premises),
            "onnxruntime": version("onnxruntime"), "threads": args.threads}
    np.savez(args.output, meta=json.dumps(meta), names=json.dumps(list(logits)), **{f"l{i}": v for i, v in enumerate(logits.values())})
    print(meta)


def load(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    data = np.load(path)
    names = json.loads(str(data["names"]))
    return json.loads(str(data["meta"])), {name: data[f"l{i}"] for i, name in enumerate(names)}


def dump_class(meta: dict[str, Any]) -> str:
    """The CPU class of a dump (``common.cpu_class``), from what its process saw."""
    masked = any("masked" in name for name in meta["isa_seen"])
    return cpu_class(meta["cpu"], meta["isa_seen"], "avx2" if masked else None)


def isa_text(meta: dict[str, Any]) -> str:
    return ", ".join(meta["isa_seen"]) or "none"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def agreement(logits: np.ndarray, reference: np.ndarray | None) -> float | None:
    return None if reference is None else float((logits.argmax(1) == reference).mean())


def compare(args: argparse.Namespace) -> None:
    """Same top-1 and largest logit difference per int8 backend; agreement with the reference's
    fp32 when its dump has one (``dump --fp32``)."""
    (meta_a, a), (meta_b, b) = load(args.reference), load(args.other)
    if len(next(iter(a.values()))) != len(next(iter(b.values()))):
        raise SystemExit("the two dumps hold different pairs; dump both with the same --sick-limit")
    reference = a["fp32"].argmax(1) if "fp32" in a else None
    rows = []
    for name in [n for n in a if n in b and n != "fp32"]:
        rows.append({
            "backend": name, "pairs": len(a[name]),
            "top1_same_on_both": float((a[name].argmax(1) == b[name].argmax(1)).mean()),
            "max_abs_logit_diff": float(np.abs(a[name] - b[name]).max()),
            "agreement_with_fp32_reference": agreement(a[name], reference),
            "agreement_with_fp32_other": agreement(b[name], reference),
        })
        print(rows[-1])
    if not rows:
        raise SystemExit("the two dumps share no int8 backend")
    lines = [
        f"int8 logits on two CPUs, {rows[0]['pairs']} pairs (guard's held-out calibration pairs, then SICK test); "
        "agreement is top-1 against the first machine's fp32",
        "",
        f"- reference: {meta_a['cpu']}, process sees {isa_text(meta_a)}",
        f"- other: {meta_b['cpu']}, process sees {isa_text(meta_b)}" + (f" ({args.note})" if args.note else ""),
        "",
        "| backend | same top-1 on both | max abs logit diff | agreement with fp32, reference | agreement with fp32, other |",
        "|---|---|---|---|---|",
    ] + [f"| {r['backend']} | {r['top1_same_on_both']:.2%} | {r['max_abs_logit_diff']:.3g} "
         f"| {percent(r['agreement_with_fp32_reference'])} | {percent(r['agreement_with_fp32_other'])} |" for r in rows]
    write_results("kernel_portability", {"rows": rows, "reference": meta_a, "other": meta_b}, "\n".join(lines),
                  args.results_dir or RESULTS / "kernel_portability" / f"{dump_class(meta_a)}-vs-{dump_class(meta_b)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("dump", help="logits of fp32 (with --fp32) and both int8 backends")
    d.add_argument("--bundle", type=Path, required=True)
    d.add_argument("-o", "--output", type=Path, required=True)
    d.add_argument("--sick-limit", type=int, default=1000, help="SICK test pairs after the held-out ones")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--fp32", action="store_true", help="also fp32 (the reference machine's run needs it)")
    c = sub.add_parser("compare", help="the table: reference dump (with fp32) against another machine's")
    c.add_argument("reference", type=Path)
    c.add_argument("other", type=Path)
    c.add_argument("--note", help='how the other dump ran, e.g. "under qemu-x86_64 -cpu max"')
    c.add_argument("--results-dir", type=Path,
                   help="default: benchmarks/results/kernel_portability/<reference CPU class>-vs-<other CPU class>")
    args = parser.parse_args()
    {"dump": dump, "compare": compare}[args.mode](args)


if __name__ == "__main__":
    main()
