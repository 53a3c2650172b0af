"""int8 fidelity: PyTorch vs ONNX fp32 vs default int8 vs the exporter's guarded int8.

Usage:
    python benchmarks/bench_int8.py --bundle bundles/minilm [--model ../shared/fixtures/minilm-l6-sick-nli]
        [--threads 2] [--repeats 3] [--nli-limit N]

"default int8" is onnxruntime's quantize_dynamic with its defaults (signed weights, per
tensor, full range, every MatMul and Gather), the int8 most ONNX ports ship. "guarded int8"
is the bundle's int8, chosen by zsl-export's accuracy guard. Each backend scores SICK test
(3 classes) and RTE dev (entailment vs not); agreement is top-1 agreement with PyTorch. Speed
is pairs/s over the whole set, median of --repeats passes taken in turn (backend order
rotates each pass), so the ratios come from one run on one machine state.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_accuracy import torch_backend
from common import FIXTURE, environment, macro_f1, nli_predictions, rte_dev, sick_test, write_results
from zsl_onnx import ZeroShotClassifier


def default_int8_bundle(bundle: Path, workdir: Path) -> Path:
    """A copy of the bundle whose int8 file is quantize_dynamic(fp32) with default settings."""
    from onnxruntime.quantization import quantize_dynamic

    copy = workdir / "default-int8"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("model_quantized.onnx*", "model_fp16.onnx*"))
    quantize_dynamic(copy / "onnx" / "model.onnx", copy / "onnx" / "model_quantized.onnx")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path, help="zsl-export output for --model")
    parser.add_argument("--model", type=Path, default=FIXTURE, help="the transformers model the bundle came from")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per backend and set")
    parser.add_argument("--nli-limit", type=int, default=None, help="first N pairs of each set (smoke runs)")
    parser.add_argument("--output", default="int8", help="result file stem under benchmarks/results/")
    args = parser.parse_args()

    manifest = json.loads((args.bundle / "zsl_onnx.json").read_text(encoding="utf-8"))
    if "int8" not in manifest["variants"]:
        raise SystemExit(f"{args.bundle} has no int8 variant: the guard rejected every candidate (see its manifest)")
    with tempfile.TemporaryDirectory() as tmp:
        default_bundle = default_int8_bundle(args.bundle, Path(tmp))
        onnx_models = {
            "onnx-fp32": (args.bundle, "fp32"),
            "onnx-int8-default": (default_bundle, "int8"),
            "onnx-int8-guarded": (args.bundle, "int8"),
        }
        backends = {"pytorch": torch_backend(args.model, args.threads)[0]}
        sizes: dict[str, float | None] = {"pytorch": None}
        for name, (bundle, variant) in onnx_models.items():
            clf = ZeroShotClassifier.from_pretrained(bundle, variant=variant, threads=args.threads, verify=False)
            backends[name] = clf.pair_logits
            sizes[name] = round((bundle / _file(bundle, variant)).stat().st_size / 1e6, 1)
        labels = clf.labels
        class_map = [{"entail": 0, "neutra": 1, "contra": 2}.get(n.lower()[:6], 1) for n in labels.names]

        rows = []
        for dataset in (sick_test(), rte_dev()):
            n = args.nli_limit or len(dataset.gold)
            premises, hypotheses, gold = dataset.premises[:n], dataset.hypotheses[:n], dataset.gold[:n]
            predictions: dict[str, np.ndarray] = {}
            speeds: dict[str, list[float]] = {name: [] for name in backends}
            names = list(backends)
            for rep in range(args.repeats):
                for name in names[rep % len(names):] + names[: rep % len(names)]:
                    start = time.perf_counter()
                    logits = backends[name](premises, hypotheses)
                    speeds[name].append(n / (time.perf_counter() - start))
                    predictions.setdefault(name, nli_predictions(logits, labels.entailment, dataset.binary, class_map))
            reference = predictions["pytorch"]
            fp32_speed = statistics.median(speeds["onnx-fp32"])
            for name in names:
                pred = predictions[name]
                rows.append(
                    {
                        "set": dataset.name,
                        "n": n,
                        "backend": name,
                        "accuracy": float((pred == gold).mean()),
                        "macro_f1": macro_f1(gold, pred),
                        "agreement": float((pred == reference).mean()),
                        "size_mb": sizes[name],
                        "pairs_per_s": statistics.median(speeds[name]),
                        "speed_vs_onnx_fp32": statistics.median(speeds[name]) / fp32_speed,
                    }
                )

    guard = manifest["variants"]["int8"]["quantization"]["guard"]
    header = (
        "| set | n | backend | accuracy | macro-F1 | agreement with PyTorch | size MB | pairs/s | speed vs ONNX fp32 |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['set']} | {r['n']} | {r['backend']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['agreement']:.4f} "
        f"| {r['size_mb'] or '-'} | {r['pairs_per_s']:.0f} | {r['speed_vs_onnx_fp32']:.2f}x |"
        for r in rows
    ]
    markdown = (
        f"int8 fidelity: {args.model.name}, {args.threads} threads, median of {args.repeats} passes; "
        f"guarded int8 = {guard['chosen']!r}\n\n{header}\n" + "\n".join(lines)
    )
    write_results(
        args.output,
        {"environment": environment(args.threads), "model": str(args.model), "bundle": str(args.bundle), "guard": guard, "rows": rows},
        markdown,
    )


def _file(bundle: Path, variant: str) -> str:
    return {"fp32": "onnx/model.onnx", "int8": "onnx/model_quantized.onnx"}[variant]


if __name__ == "__main__":
    main()
