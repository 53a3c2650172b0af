"""Embedding bundles against the NLI cross-encoder: zero-shot accuracy, int8 agreement, and speed
as the number of labels grows.

Usage:
    # accuracy and macro-F1 (AG News test, SST-2 dev), int8 vs fp32 ranking agreement
    python benchmarks/bench_embedding.py accuracy --bundle bundles/all-minilm-l6-v2 --nli-bundle bundles/minilm
    # texts/s at 2, 5, 10, 20, 50 labels, embedding bundle vs the NLI bundle's int8 (quiet machine!)
    python benchmarks/bench_embedding.py speed --bundle bundles/all-minilm-l6-v2 --nli-bundle bundles/minilm
    # embed() texts/s of the bundle's int8 against its fp32, paired passes (quiet machine!)
    python benchmarks/bench_embedding.py variants --bundle bundles/all-minilm-l6-v2 --texts 200

Accuracy runs every text of each set through ``ZeroShotClassifier.scores`` with the stated label
words and template (the same for both kinds of model). Agreement is top-1 agreement of the
int8 variant with fp32 on the same texts (none of which the export saw). Speed times one call
``clf(texts, labels)`` on a fresh classifier (so label encoding is counted), median of
``--rounds``; the NLI side runs its default variant (int8 on CPU). BTZSC's published figures for
all-MiniLM-L6-v2 are quoted from the ``btzsc`` 0.1.2 package (``btzsc/_baselines/acc_scores.csv``
and ``f1_scores.csv``; BTZSC has no SST-2 column, its nearest is Rotten Tomatoes, the corpus
SST-2 is built from).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, macro_f1, paired_timings, sst2_dev, write_results
from zsl_onnx import BundleError, ZeroShotClassifier

# Label words and template for AG News (classes 1-4: World, Sports, Business, Sci/Tech). Chosen
# among six wordings on the first 1,000 test items; reported on all 7,600.
AG_LABELS = ["world politics", "sports", "business and economy", "science and technology"]
AG_TEMPLATE = "This news article is about {}."
SST2_LABELS = ["negative", "positive"]
SST2_TEMPLATE = "This review is {}."
# btzsc 0.1.2, btzsc/_baselines/{acc,f1}_scores.csv, row "all-MiniLM-L6-v2".
BTZSC_MINILM = {
    "AG News": {"column": "agnews", "accuracy": 0.5, "macro_f1": 0.4948541224002838},
    "SST-2": {"column": "rottentomatoes", "accuracy": 0.4990619122982025, "macro_f1": 0.3378419876098633},
}
# The first 50 of these are the speed benchmark's label sets (2, 5, 10, 20, 50 labels).
SPEED_LABELS = (
    "world politics, sports, business and economy, science and technology, health, entertainment, travel, "
    "education, crime, weather, music, film, books, food, fashion, religion, history, art, law, military, "
    "environment, energy, transport, housing, employment, finance, markets, startups, software, hardware, "
    "internet, space, medicine, biology, chemistry, physics, mathematics, agriculture, tourism, gaming, "
    "football, tennis, basketball, elections, immigration, diplomacy, terrorism, climate, real estate, retail"
).split(", ")


def accuracy(args: argparse.Namespace) -> None:
    sets = {
        "AG News": (*ag_news(args.limit)[:2], AG_LABELS, AG_TEMPLATE),
        "SST-2": (*sst2_dev(args.limit)[:2], SST2_LABELS, SST2_TEMPLATE),
    }
    kinds = args.models.split(",")
    models: list[tuple[str, Path, str]] = [("embedding", args.bundle, v) for v in ("fp32", "int8") if "embedding" in kinds]
    if args.nli_bundle is not None and "nli" in kinds:
        models += [("nli", args.nli_bundle, v) for v in ("fp32", "int8")]
    rows: list[dict[str, Any]] = []
    for set_name, (texts, gold, labels, template) in sets.items():
        predictions: dict[tuple[str, str], np.ndarray] = {}
        for kind, bundle, variant in models:
            n = min(len(texts), args.nli_limit) if kind == "nli" and args.nli_limit else len(texts)
            try:
                clf = ZeroShotClassifier.from_pretrained(bundle, variant=variant, threads=args.threads)
            except BundleError as exc:  # a bundle without int8 (the guard refused it) is reported, not fatal
                print(f"{set_name} {kind} {variant}: skipped ({exc})", flush=True)
                continue
            start = time.perf_counter()
            pred = clf.scores(texts[:n], labels, hypothesis_template=template).argmax(axis=1)
            seconds = time.perf_counter() - start
            predictions[(kind, variant)] = pred
            fp32 = predictions.get((kind, "fp32"))
            row = {
                "set": set_name, "n": n, "model": f"{kind} ({Path(bundle).name})", "variant": variant,
                "labels": labels, "template": template,
                "accuracy": round(float((pred == gold[:n]).mean()), 4), "macro_f1": round(macro_f1(gold[:n], pred), 4),
                "agreement_with_fp32": round(float((pred == fp32).mean()), 4) if fp32 is not None else None,
                "guard_passed": clf.fidelity.get("guard_passed"),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(row, flush=True)
    lines = [
        f"Zero-shot accuracy, embedding bundle vs NLI bundle ({args.threads} threads)",
        "",
        "| set | n | model | variant | accuracy | macro-F1 | top-1 agreement with fp32 | int8 guard passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = "-" if r["agreement_with_fp32"] is None else f"{r['agreement_with_fp32']:.4f}"
        passed = "-" if r["guard_passed"] is None else ("yes" if r["guard_passed"] else "no (kept with --keep-lossy-int8)")
        lines.append(f"| {r['set']} | {r['n']} | {r['model']} | {r['variant']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {agree} | {passed} |")
    for name, ref in BTZSC_MINILM.items() if "embedding" in kinds else ():
        lines.append(f"| {name} | - | BTZSC published, all-MiniLM-L6-v2 (column {ref['column']}) | - | "
                     f"{ref['accuracy']:.4f} | {ref['macro_f1']:.4f} | - | - |")
    lines += ["", f"AG News labels {AG_LABELS}, template {AG_TEMPLATE!r}; SST-2 labels {SST2_LABELS}, template {SST2_TEMPLATE!r}."]
    data = {"rows": rows, "btzsc_all_minilm_l6_v2": BTZSC_MINILM, "environment": environment(args.threads)}
    stem = "embedding_accuracy" if kinds == ["embedding", "nli"] else f"embedding_accuracy_{'_'.join(kinds)}"
    write_results(stem, data, "\n".join(lines), args.results_dir or machine_results_dir("embedding_accuracy"))


def speed(args: argparse.Namespace) -> None:
    texts = ag_news(args.texts)[0]
    counts = [int(c) for c in args.labels.split(",")]
    models = [("embedding", args.bundle, args.variant), ("nli", args.nli_bundle, None)]
    rows: list[dict[str, Any]] = []
    times: dict[tuple[str, int], list[float]] = {(kind, count): [] for kind, _, _ in models for count in counts}
    chosen: dict[str, str] = {}
    # Every label count and both models in each round, the models' order rotating: a shared
    # machine's speed drifts over minutes, and this way a drift hits every point of a round alike.
    for round_ in range(args.rounds):
        for count in counts:
            for kind, bundle, variant in models[round_ % 2:] + models[: round_ % 2]:
                seconds, chosen[kind] = timed_call(bundle, variant, args.threads, texts, count)
                times[(kind, count)].append(seconds)
    for count in counts:
        ratios = [n / e for e, n in zip(times[("embedding", count)], times[("nli", count)])]
        for kind, bundle, _ in models:
            rows.append({"model": kind, "bundle": str(bundle), "variant": chosen[kind], "labels": count,
                         "texts": len(texts), "texts_per_s": round(len(texts) / statistics.median(times[(kind, count)]), 2),
                         "best_texts_per_s": round(len(texts) / min(times[(kind, count)]), 2),
                         "embedding_vs_nli_median_of_rounds": round(statistics.median(ratios), 2)})
            print(rows[-1], flush=True)
    by = {(r["model"], r["labels"]): r["texts_per_s"] for r in rows}
    lines = [
        f"Texts/s by number of labels, {len(texts)} AG News texts, {args.threads} threads, median of {args.rounds} "
        "rounds (a fresh classifier per call, warmed up on another label set, so label encoding is counted; "
        "each round times every label count, the two models alternating)",
        "",
        "| labels | embedding texts/s | NLI texts/s | embedding / NLI (medians) | embedding / NLI, median of rounds |",
        "|---|---|---|---|---|",
    ]
    pairs = {r["labels"]: r["embedding_vs_nli_median_of_rounds"] for r in rows}
    for count in counts:
        e, n = by[("embedding", count)], by[("nli", count)]
        lines.append(f"| {count} | {e:.1f} | {n:.1f} | {e / n:.1f}x | {pairs[count]:.1f}x |")
    if 5 in counts and 50 in counts:
        per_round = statistics.median(f / t for f, t in zip(times[("embedding", 5)], times[("embedding", 50)]))
        alone = flatness(args, texts)
        lines += ["", f"Embedding 50-label rate / 5-label rate: {by[('embedding', 50)] / by[('embedding', 5)]:.2f} "
                  f"(median of rounds: {per_round:.2f}); measured back to back, without the NLI calls in between: "
                  f"{alone:.2f} (median of {args.rounds} pairs)"]
    variants = {r["model"]: r["variant"] for r in rows}
    lines += [f"Variants: embedding {variants['embedding']}, NLI {variants['nli']}."]
    write_results("embedding_speed", {"rows": rows, "environment": environment(args.threads)}, "\n".join(lines),
                  args.results_dir or machine_results_dir("embedding_speed"))


def flatness(args: argparse.Namespace, texts: list[str]) -> float:
    """The embedding bundle's 50-label rate over its 5-label rate, the two calls back to back in
    each round: in the sweep, the NLI bundle's long 50-label calls (tens of seconds) run just
    before or after the embedding's, and a shared machine's speed after a long busy spell is
    not its speed after a short one."""
    ratios = []
    for _ in range(args.rounds):
        five, _ = timed_call(args.bundle, args.variant, args.threads, texts, 5)
        fifty, _ = timed_call(args.bundle, args.variant, args.threads, texts, 50)
        ratios.append(five / fifty)
    return statistics.median(ratios)


def timed_call(bundle: Path, variant: str | None, threads: int, texts: list[str], labels: int) -> tuple[float, str]:
    """(seconds, variant) of one call of a fresh classifier on ``texts`` x the first ``labels``
    speed labels, label encoding included."""
    clf = ZeroShotClassifier.from_pretrained(bundle, variant=variant, threads=threads)
    clf(texts[:2], ["warm-up"])  # first-run allocations out; the timed label set is still new
    start = time.perf_counter()
    clf(texts, SPEED_LABELS[:labels])
    return time.perf_counter() - start, clf.variant


def variants(args: argparse.Namespace) -> None:
    """``embed()`` texts/s of the bundle's fp32 and int8 in paired, interleaved passes."""
    texts = ag_news(args.texts)[0]
    classifiers = {v: ZeroShotClassifier.from_pretrained(args.bundle, variant=v, threads=args.threads)
                   for v in ("fp32", "int8")}
    rates = paired_timings({v: (lambda part, clf=clf: clf.embed(part)) for v, clf in classifiers.items()},
                           texts, chunk=50, repeats=args.rounds)
    r = rates["int8"]
    markdown = (f"embed() on {len(texts)} AG News texts, passes of 50, each {args.rounds} times per variant, "
                f"{args.threads} threads\n\n| variant | texts/s (median / best) | vs fp32: median [quartiles] |\n"
                f"|---|---|---|\n| fp32 | {rates['fp32']['median_texts_per_s']:.1f} / {rates['fp32']['best_texts_per_s']:.1f} "
                f"| 1.00x |\n| int8 | {r['median_texts_per_s']:.1f} / {r['best_texts_per_s']:.1f} "
                f"| {r['ratio_median']:.2f}x [{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}] |")
    write_results("embedding_variants", {"bundle": str(args.bundle), "rates": rates,
                                         "environment": environment(args.threads)}, markdown, args.results_dir or machine_results_dir("embedding_variants"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["accuracy", "speed", "variants"])
    parser.add_argument("--bundle", type=Path, required=True, help="embedding bundle (zsl-export package:all_minilm_l6_v2)")
    parser.add_argument("--nli-bundle", type=Path, help="NLI bundle to compare with (the exported fixture)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="accuracy: first N items of each set (default: all)")
    parser.add_argument("--models", default="embedding,nli", choices=["embedding,nli", "embedding", "nli"],
                        help="accuracy: which bundles to run (separate runs write separate result files)")
    parser.add_argument("--nli-limit", type=int, help="accuracy: first N items of each set for the NLI bundle (it is slow)")
    parser.add_argument("--texts", type=int, default=100, help="speed: AG News texts per call (default 100)")
    parser.add_argument("--labels", default="2,5,10,20,50", help="speed: label counts (default 2,5,10,20,50)")
    parser.add_argument("--rounds", type=int, default=3, help="speed: timed calls per point (default 3)")
    parser.add_argument("--variant", help="speed: embedding variant (default: the bundle's CPU default)")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("embedding_<mode>"))
    args = parser.parse_args()
    if args.mode == "speed" and args.nli_bundle is None:
        parser.error("speed needs --nli-bundle")
    {"accuracy": accuracy, "speed": speed, "variants": variants}[args.mode](args)


if __name__ == "__main__":
    main()
