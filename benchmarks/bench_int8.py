"""The int8 table: agreement with fp32, accuracy, size, batch independence and speed vs fp32.

Usage (from the repository root):
    python benchmarks/bench_int8.py --bundle BUNDLE [--threads 2] [--news 200] [--chunk 10] [--repeats 3]
        [--sick-limit N] [--compare OTHER_BUNDLE] [--results-dir DIR]

BUNDLE is a zsl-export output of the trained fixture (../shared/fixtures/minilm-l6-sick-nli).
Backends: the bundle's fp32, its int8 (the guard's choice, labelled per-row), and onnxruntime's
``quantize_dynamic`` with default settings on the same fp32 graph (one activation scale per
tensor per batch: what most ONNX ports ship), for comparison; with ``--compare``, another
export's int8 too (an older scheme, say: one interleaved run compares them on the same machine
state, which separate runs on a shared machine cannot). For each:

- agreement: top-1 agreement with fp32 on the guard's held-out calibration pairs (built-in
  set) and on SICK test (4,906 pairs), and the mean |logit difference| from fp32 on each (near
  99.5% agreement a few pairs decide, the mean difference is steadier); accuracy on SICK test;
- size of the ONNX file;
- batch independence: max |logit difference| of the first 128 SICK test pairs scored one at a
  time vs all in one call (0 means bit-identical);
- speed: AG News texts x 10 labels through ``ZeroShotClassifier`` with its default batching,
  in passes of ``--chunk`` texts, each taken by every backend in turn (order rotating),
  ``--repeats`` times: texts/s of the median pass and of each chunk's best pass, and the ratio
  to fp32 as the median [quartiles] of neighbouring passes' ratios and as the ratio of best
  times (see ``common.paired_timings``: shared machines change speed for seconds at a time).

The CPU model and its ISA flags are recorded with the results; speed needs a quiet machine.
Results go to benchmarks/results/int8/<CPU class>/ (at 2 threads) or its N-thread/ subfolder.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, paired_timings, sick_test, write_results

from zsl_onnx import ZeroShotClassifier
from zsl_onnx_export.internals import builtin_calibration

TOPICS10 = ["world", "sports", "business", "science and technology", "health", "entertainment", "politics",
            "travel", "education", "weather"]
INDEPENDENCE_PAIRS = 128


def dynamic_int8_bundle(bundle: Path, workdir: Path) -> Path:
    """A copy of the bundle whose int8 file is quantize_dynamic(fp32) with default settings."""
    from onnxruntime.quantization import quantize_dynamic

    copy = workdir / "dynamic-int8"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("model_quantized.onnx*", "model_fp16.onnx*"))
    quantize_dynamic(copy / "onnx" / "model.onnx", copy / "onnx" / "model_quantized.onnx")
    return copy


def fidelity(classifiers: dict[str, ZeroShotClassifier], sick_limit: int | None) -> list[dict[str, Any]]:
    """Agreement with fp32, SICK accuracy and batch independence of every backend."""
    calibration = builtin_calibration()
    heldout = calibration.heldout
    cal_premises = [calibration.premises[i] for i in heldout]
    cal_hypotheses = [calibration.hypotheses[i] for i in heldout]
    sick = sick_test()
    n = sick_limit or len(sick.gold)
    premises, hypotheses, gold = sick.premises[:n], sick.hypotheses[:n], sick.gold[:n]
    labels = classifiers["fp32"].scorer.labels
    class_map = np.array([{"entail": 0, "neutra": 1, "contra": 2}.get(name.lower()[:6], 1) for name in labels.names])
    reference = {"cal": classifiers["fp32"].pair_logits(cal_premises, cal_hypotheses),
                 "sick": classifiers["fp32"].pair_logits(premises, hypotheses)}
    rows = []
    k = min(INDEPENDENCE_PAIRS, n)
    for name, clf in classifiers.items():
        cal = clf.pair_logits(cal_premises, cal_hypotheses)
        sick_logits = clf.pair_logits(premises, hypotheses)
        alone = np.concatenate([clf.pair_logits([p], [h]) for p, h in zip(premises[:k], hypotheses[:k])])
        rows.append({
            "backend": name,
            "heldout_pairs": len(heldout),
            "heldout_agreement": float((cal.argmax(1) == reference["cal"].argmax(1)).mean()),
            "heldout_mean_abs_logit_diff": float(np.abs(cal - reference["cal"]).mean()),
            "sick_pairs": n,
            "sick_agreement": float((sick_logits.argmax(1) == reference["sick"].argmax(1)).mean()),
            "sick_mean_abs_logit_diff": float(np.abs(sick_logits - reference["sick"]).mean()),
            "sick_accuracy": float((class_map[sick_logits.argmax(1)] == gold).mean()),
            "alone_vs_batched_max_abs_diff": float(np.abs(alone - sick_logits[:k]).max()),
        })
        print(rows[-1], flush=True)
    return rows


def speeds(classifiers: dict[str, ZeroShotClassifier], texts: list[str], chunk: int, repeats: int) -> dict[str, dict]:
    """Paired, interleaved timings of every backend (see ``common.paired_timings``); fp32 first."""
    runners = {name: (lambda part, clf=clf: clf(part, TOPICS10)) for name, clf in classifiers.items()}
    return paired_timings(runners, texts, chunk, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path, help="zsl-export output of the fixture")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--news", type=int, default=200, help="AG News texts for the speed run (x 10 labels)")
    parser.add_argument("--chunk", type=int, default=10, help="texts per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of every chunk per backend")
    parser.add_argument("--sick-limit", type=int, default=None, help="first N SICK test pairs (smoke runs)")
    parser.add_argument("--compare", type=Path, default=None, help="another export of the fixture whose int8 joins the run")
    parser.add_argument("--results-dir", type=Path,
                        help=RESULTS_DIR_HELP.format("int8") + ", and a N-thread/ subfolder unless --threads 2")
    args = parser.parse_args()

    manifest = json.loads((args.bundle / "zsl_onnx.json").read_text(encoding="utf-8"))
    if "int8" not in manifest["variants"]:
        raise SystemExit(f"{args.bundle} has no int8 variant: the guard rejected every candidate (see its manifest)")
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {"fp32": (args.bundle, "fp32"), "int8 (per-row, guarded)": (args.bundle, "int8"),
                   "int8 (onnxruntime dynamic, default)": (dynamic_int8_bundle(args.bundle, Path(tmp)), "int8")}
        if args.compare is not None:
            bundles[f"int8 ({args.compare.name})"] = (args.compare, "int8")
        def load() -> dict[str, ZeroShotClassifier]:
            return {name: ZeroShotClassifier.from_pretrained(b, variant=v, threads=args.threads, verify=False)
                    for name, (b, v) in bundles.items()}

        sizes = {name: (b / ("onnx/model.onnx" if v == "fp32" else "onnx/model_quantized.onnx")).stat().st_size
                 for name, (b, v) in bundles.items()}
        rows = fidelity(load(), args.sick_limit)
        gc.collect()
        texts = ag_news(args.news)[0]
        rates = speeds(load(), texts, args.chunk, args.repeats)  # fresh sessions: nothing left from the fidelity runs
    for row in rows:
        row["size_mb"] = round(sizes[row["backend"]] / 1e6, 1)
        row.update(rates[row["backend"]])
    int8 = manifest["variants"]["int8"]
    fp32_nodes = int8["quantization"].get("nodes_to_exclude", [])
    header = ("| backend | agreement, held-out calibration | agreement, SICK test | mean abs logit diff, held-out / SICK "
              "| SICK accuracy | size MB "
              "| alone vs batched max diff | texts/s (median / best) | speed vs fp32: median of pairs [quartiles] "
              "| vs fp32, best |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['backend']} | {r['heldout_agreement']:.2%} | {r['sick_agreement']:.2%} "
             f"| {r['heldout_mean_abs_logit_diff']:.4f} / {r['sick_mean_abs_logit_diff']:.4f} | {r['sick_accuracy']:.4f} "
             f"| {r['size_mb']} | {r['alone_vs_batched_max_abs_diff']:.3g} "
             f"| {r['median_texts_per_s']:.1f} / {r['best_texts_per_s']:.1f} "
             f"| {r['ratio_median']:.2f}x [{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}] | {r['ratio_best']:.2f}x |" for r in rows]
    markdown = (
        f"int8 vs fp32: {manifest['source']['model']}, int8 = {int8['quantization']['guard']['chosen']!r} "
        f"({len(fp32_nodes)} MatMuls kept fp32); speed: {len(texts)} AG News texts x 10 labels in passes of "
        f"{args.chunk} texts, each pass {args.repeats} times per backend, interleaved; {args.threads} threads; "
        f"SICK test: {rows[0]['sick_pairs']} pairs"
        f"\n\n{header}\n" + "\n".join(lines)
    )
    write_results("int8", {"environment": environment(args.threads), "bundle": str(args.bundle),
                           "chosen": int8["quantization"]["guard"]["chosen"], "fp32_nodes": fp32_nodes,
                           "speed_texts": len(texts), "chunk": args.chunk, "repeats": args.repeats,
                           "sick_limit": args.sick_limit, "rows": rows},
                  markdown, args.results_dir or default_results_dir(args.threads))



def default_results_dir(threads: int) -> Path:
    """2 threads (every benchmark's default) in the CPU class's folder, other counts beside it."""
    folder = machine_results_dir("int8")
    return folder if threads == 2 else folder / f"{threads}-thread{'' if threads == 1 else 's'}"


if __name__ == "__main__":
    main()
