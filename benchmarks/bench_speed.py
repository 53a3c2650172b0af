"""Speed: the transformers zero-shot pipeline vs optimum's ORT pipeline vs zsl_onnx fp32/int8.

Usage:
    python benchmarks/bench_speed.py [--model ../shared/fixtures/minilm-l6-sick-nli] [--bundle bundles/minilm]
        [--texts 32] [--rounds 3] [--labels 2,5,10,20] [--threads 1,2]
        [--replicas deberta-v3-base,selectra-medium,xlm-roberta-large,bart-large] [--replica-texts 4]
        [--only-replicas]

A full default run takes over 25 minutes on 2 cores (the pipeline at batch 1 dominates);
each configuration's line is printed as soon as it is measured.

--replicas adds speed rows (news, 10 labels) for full-size random-weight replicas of the seed
architectures, built from config by ``tests/tiny_models.py`` and exported once into
bundles/replicas/NAME/. Their weights are random: these rows say nothing about accuracy, and
their int8 is the first all-int8 candidate (the accuracy guard is bypassed with
min_agreement=1e-6, since agreement between random models means nothing, and its speed
checks run on 128 calibration pairs rather than the built-in 832, which on a 24-layer
model saves about 20 minutes of export). --only-replicas skips the fixture's rows, cold
start and plots.

All backends get the same texts and labels in the same process. For every configuration
the backends run in turn, --rounds times (interleaved), and each reports its median, so a
slow moment of the machine hits all of them and the ratios come from one run.

- throughput: texts/s classifying --texts texts at once. The pipeline runs with its default
  batch size (1) and at its best batch size from a sweep (reported separately); optimum's
  ORTModelForSequenceClassification runs the bundle's fp32 graph inside the same pipeline.
- latency: one text per call, p50 and p95 over --texts calls.
- sweeps: number of labels (AG News texts), text length (a short sentence, a news item, a
  long article the model truncates), threads.
- zsl-onnx's own batching: int8 with and without its token cap per micro-batch.
- cold start and peak RSS: a new process per backend imports, loads and classifies one text.
Results: benchmarks/results/speed/<CPU class>/speed.{json,md} and speed_*.png, with --only-replicas
benchmarks/results/replicas/<CPU class>/ (--results-dir to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import FIXTURE, REPO, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, sick_test, write_results

from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import DEFAULT_TEMPLATE
from tiny_models import NLI2, NLI3, REPLICAS, build_model

TOPICS = ["world", "sports", "business", "science and technology", "health", "entertainment", "politics",
          "travel", "education", "weather", "crime", "religion", "music", "food", "cars", "fashion",
          "real estate", "energy", "law", "space"]
PIPELINE_BATCHES = (1, 8, 32, 64)
REPLICA_PIPELINE_BATCHES = (1, 8, 32)
REPLICA_CALIBRATION_PAIRS = 128  # the exporter's minimum is 100; agreement is not judged on replicas
TOKEN_CAPS = (None, 256, 512, 1024)  # zsl-onnx max_batch_tokens; None = 32 pairs whatever their length

COLD = {
    "pipeline": (
        "import time; t=time.perf_counter()\n"
        "from transformers import pipeline\n"
        "p = pipeline('zero-shot-classification', model=MODEL)\n"
        "p(TEXT, LABELS)\n"
    ),
    "zsl-int8": (
        "import time; t=time.perf_counter()\n"
        "from zsl_onnx import ZeroShotClassifier\n"
        "c = ZeroShotClassifier.from_pretrained(BUNDLE, variant='int8')\n"
        "c(TEXT, LABELS)\n"
    ),
}
COLD_TAIL = (
    "import json; s=time.perf_counter()-t\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "print(json.dumps({'seconds': s, 'peak_rss_mb': int(hwm.split()[1]) / 1024}))\n"
)


def backends(model: Path, bundle: Path, threads: int) -> dict[str, Callable[..., Any]]:
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model)
    pipe = pipeline("zero-shot-classification", model=str(model), tokenizer=tokenizer)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    ort_model = ORTModelForSequenceClassification.from_pretrained(
        bundle, subfolder="onnx", file_name="model.onnx", session_options=options
    )
    ort_pipe = pipeline("zero-shot-classification", model=ort_model, tokenizer=tokenizer)
    fp32 = ZeroShotClassifier.from_pretrained(bundle, variant="fp32", threads=threads)
    int8 = ZeroShotClassifier.from_pretrained(bundle, variant="int8", threads=threads)
    return {
        "pipeline": lambda texts, labels, batch=1: pipe(texts, labels, batch_size=batch),
        "optimum-ort": lambda texts, labels, batch=1: ort_pipe(texts, labels, batch_size=batch),
        "zsl-fp32": lambda texts, labels, batch=32: fp32(texts, labels, batch_size=batch),
        "zsl-int8": lambda texts, labels, batch=32: int8(texts, labels, batch_size=batch),
    }


def prepare_replica(name: str, corpus: list[str]) -> tuple[Path, Path]:
    """Build and export a full-size random-weight replica once; reuse it on later runs."""
    from zsl_onnx_export import export_bundle

    family, size = REPLICAS[name]
    root = REPO / "bundles" / "replicas" / name
    model_dir, bundle_dir = root / "model", root / "bundle"
    if not (bundle_dir / "zsl_onnx.json").exists():
        print(f"building {name} (random weights) and exporting it; this takes minutes", flush=True)
        labels = NLI2 if family == "deberta-v3" else NLI3
        build_model(family, model_dir, labels=labels, size=size, corpus=corpus)
        calibration = root / "calibration.jsonl"
        pairs = [{"premise": text, "hypothesis": DEFAULT_TEMPLATE.format(label)}
                 for text in corpus[: REPLICA_CALIBRATION_PAIRS // 4] for label in TOPICS[:4]]
        calibration.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
        export_bundle(model_dir, bundle_dir, min_agreement=1e-6, calibration_file=calibration,
                      overwrite=True, progress=print)
    return model_dir, bundle_dir


def throughput(fns: dict[str, Callable[..., Any]], texts: list[str], labels: list[str], best_batch: int,
               rounds: int) -> dict[str, float]:
    """Median seconds per backend for classifying all ``texts`` against ``labels``."""
    runs = {
        "pipeline (batch 1, default)": lambda: fns["pipeline"](texts, labels, 1),
        f"pipeline (batch {best_batch}, best)": lambda: fns["pipeline"](texts, labels, best_batch),
        "optimum ORT pipeline (fp32)": lambda: fns["optimum-ort"](texts, labels, best_batch),
        "zsl-onnx fp32": lambda: fns["zsl-fp32"](texts, labels),
        "zsl-onnx int8": lambda: fns["zsl-int8"](texts, labels),
    }
    return interleaved(runs, rounds)


def best_pipeline_batch(fns: dict[str, Callable[..., Any]], texts: list[str], labels: list[str],
                        batches: tuple[int, ...]) -> int:
    sweep = interleaved({b: (lambda b=b: fns["pipeline"](texts, labels, b)) for b in batches}, 1)
    return min(batches, key=lambda b: sweep[b])


def ratio_rows(seconds: dict[str, float], n_texts: int, best_batch: int, **keys: Any) -> list[dict[str, Any]]:
    base = seconds["pipeline (batch 1, default)"]
    best = seconds[f"pipeline (batch {best_batch}, best)"]
    optimum = seconds["optimum ORT pipeline (fp32)"]
    return [{**keys, "backend": name, "texts_per_s": n_texts / s, "vs_pipeline_default": base / s,
             "vs_pipeline_best": best / s, "vs_optimum": optimum / s} for name, s in seconds.items()]


def interleaved(runs: dict[Any, Callable[[], Any]], rounds: int) -> dict[Any, float]:
    """Median seconds of each callable over ``rounds`` rounds, callables taken in turn."""
    times: dict[Any, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def latencies(fn: Callable[[str], Any], texts: list[str]) -> tuple[float, float]:
    values = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        values.append(time.perf_counter() - start)
    values.sort()
    return values[len(values) // 2], values[min(len(values) - 1, int(0.95 * len(values)))]


def cold_start(kind: str, model: Path, bundle: Path, runs: int) -> dict[str, float]:
    code = (f"MODEL={str(model)!r}; BUNDLE={str(bundle)!r}; TEXT='A man is playing a guitar.'; "
            f"LABELS={TOPICS[:10]!r}\n" + COLD[kind] + COLD_TAIL)
    results = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in results) for k in ("seconds", "peak_rss_mb")}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=FIXTURE)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles" / "minilm")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--labels", default="2,5,10,20")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--replicas", default="", help=f"comma list of {', '.join(REPLICAS)}, or 'all'")
    parser.add_argument("--replica-texts", type=int, default=4)
    parser.add_argument("--only-replicas", action="store_true", help="skip the fixture's rows, cold start and plots")
    parser.add_argument("--output", default="speed")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("speed (or replicas)"))
    args = parser.parse_args()
    args.replicas = list(REPLICAS) if args.replicas == "all" else [r for r in args.replicas.split(",") if r]
    unknown = [r for r in args.replicas if r not in REPLICAS]
    if unknown:
        parser.error(f"unknown replica(s) {unknown}; choose from {list(REPLICAS)}")
    if args.only_replicas and not args.replicas:
        parser.error("--only-replicas needs --replicas NAME[,NAME...]: otherwise there is nothing to measure")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.labels = [int(n) for n in args.labels.split(",")]
    args.results_dir = args.results_dir or machine_results_dir("replicas" if args.only_replicas else "speed")
    return args


def main() -> None:
    args = parse_args()
    news, _, _ = ag_news(args.texts)
    short = sick_test().premises[: args.texts]
    # Long articles (12 news items joined, cut at the model's max_length): a quarter as many,
    # or the pipeline's one-pair-at-a-time rounds take minutes.
    long = [" ".join(news[(i + k) % len(news)] for k in range(12)) for i in range(max(4, args.texts // 4))]
    rows: list[dict[str, Any]] = []
    for threads in [] if args.only_replicas else args.threads:
        rows += fixture_rows(args, threads, {"news": news, "short sentence": short, "long article": long})
    rows += replica_rows(args, news)

    cold = {} if args.only_replicas else {kind: cold_start(kind, args.model, args.bundle, args.cold_runs)
                                          for kind in COLD}
    sizes = {} if args.only_replicas else {
        "onnx fp32 MB": (args.bundle / "onnx" / "model.onnx").stat().st_size / 1e6,
        "onnx int8 MB": (args.bundle / "onnx" / "model_quantized.onnx").stat().st_size / 1e6}
    env = environment(",".join(map(str, args.threads)))  # every thread count the run swept
    write_results(args.output, {"environment": env, "model": str(args.model), "bundle": str(args.bundle),
                                "rows": rows, "cold_start": cold, "sizes": sizes},
                  _markdown(rows, cold, sizes, args), args.results_dir)
    if not args.only_replicas:
        _plots(rows, args.model.name, args.threads[-1], args.results_dir, env["cpu"])


def fixture_rows(args: argparse.Namespace, threads: int, texts: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Throughput per label count and text length, int8 by token cap, and latency, at ``threads``."""
    news, labels10 = texts["news"], TOPICS[:10]
    fns = backends(args.model, args.bundle, threads)
    best_batch = best_pipeline_batch(fns, news, labels10, PIPELINE_BATCHES)
    workloads = [("news", news, n) for n in args.labels]
    workloads += [(kind, texts[kind], 10) for kind in ("short sentence", "long article")]
    rows: list[dict[str, Any]] = []
    for kind, batch, n_labels in workloads:
        seconds = throughput(fns, batch, TOPICS[:n_labels], best_batch, args.rounds)
        print(f"{threads} threads, {kind}, {n_labels} labels: "
              + ", ".join(f"{name} {len(batch) / s:.1f} texts/s" for name, s in seconds.items()), flush=True)
        rows += ratio_rows(seconds, len(batch), best_batch, model=args.model.name, threads=threads,
                           texts=kind, labels=n_labels)
    capped = {cap: ZeroShotClassifier.from_pretrained(args.bundle, variant="int8", threads=threads,
                                                      max_batch_tokens=cap) for cap in TOKEN_CAPS}
    caps = interleaved({cap: (lambda c=c: c(news, labels10)) for cap, c in capped.items()}, args.rounds)
    print(f"{threads} threads, news, 10 labels, zsl-onnx int8 by token cap: "
          + ", ".join(f"{cap} {len(news) / s:.1f} texts/s" for cap, s in caps.items()), flush=True)
    rows += [{"model": args.model.name, "threads": threads, "texts": "news", "labels": 10,
              "backend": f"zsl-onnx int8, max_batch_tokens={cap}", "token_cap_texts_per_s": len(news) / s}
             for cap, s in caps.items()]
    for name, key in (("pipeline (batch 1, default)", "pipeline"), ("optimum ORT pipeline (fp32)", "optimum-ort"),
                      ("zsl-onnx fp32", "zsl-fp32"), ("zsl-onnx int8", "zsl-int8")):
        p50, p95 = latencies(lambda text, key=key: fns[key](text, labels10), news[: min(32, args.texts)])
        rows.append({"model": args.model.name, "threads": threads, "texts": "news, one per call", "labels": 10,
                     "backend": name, "latency_p50_ms": 1000 * p50, "latency_p95_ms": 1000 * p95})
    return rows


def replica_rows(args: argparse.Namespace, news: list[str]) -> list[dict[str, Any]]:
    """One round of news x 10 labels on each full-size random-weight replica, at the last thread count."""
    if not args.replicas:
        return []
    corpus = ag_news()[0] + sick_test().premises
    threads, labels10, texts = args.threads[-1], TOPICS[:10], news[: args.replica_texts]
    rows: list[dict[str, Any]] = []
    for name in args.replicas:
        model_dir, bundle_dir = prepare_replica(name, corpus)
        fns = backends(model_dir, bundle_dir, threads)
        best_batch = best_pipeline_batch(fns, texts, labels10, REPLICA_PIPELINE_BATCHES)
        seconds = throughput(fns, texts, labels10, best_batch, 1)
        print(f"{name} (random weights), {threads} threads, news, 10 labels: "
              + ", ".join(f"{b} {len(texts) / s:.2f} texts/s" for b, s in seconds.items()), flush=True)
        rows += ratio_rows(seconds, len(texts), best_batch, model=f"{name} (random weights)",
                           threads=threads, texts="news", labels=10)
        del fns
    return rows


def _markdown(rows: list[dict[str, Any]], cold: dict[str, dict[str, float]], sizes: dict[str, float], args: Any) -> str:
    lines = ["| model | threads | texts | labels | backend | texts/s | vs pipeline default | vs pipeline best | vs optimum ORT |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "texts_per_s" in r:
            lines.append(f"| {r['model']} | {r['threads']} | {r['texts']} | {r['labels']} | {r['backend']} | "
                         f"{r['texts_per_s']:.2f} | {r['vs_pipeline_default']:.2f}x | {r['vs_pipeline_best']:.2f}x | "
                         f"{r['vs_optimum']:.2f}x |")
    capped = [f"| {r['threads']} | {r['backend']} | {r['token_cap_texts_per_s']:.2f} |"
              for r in rows if "token_cap_texts_per_s" in r]
    if capped:
        lines += ["", "| threads | zsl-onnx int8 batching (news, 10 labels, batch_size 32) | texts/s |", "|---|---|---|"]
        lines += capped
    latency = [f"| {r['threads']} | {r['backend']} | {r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} |"
               for r in rows if "latency_p50_ms" in r]
    if latency:
        lines += ["", "| threads | backend | latency p50 ms | latency p95 ms |", "|---|---|---|---|"] + latency
    if cold:
        lines += ["", "| new process: import, load, classify one text (10 labels) | seconds | peak RSS MB |",
                  "|---|---|---|"]
        lines += [f"| {kind} | {v['seconds']:.2f} | {v['peak_rss_mb']:.0f} |" for kind, v in cold.items()]
    if sizes:
        lines += ["", " ".join(f"{k}: {v:.1f}" for k, v in sizes.items())]
    if args.only_replicas:
        title = (f"Speed: random-weight replicas only, {args.replica_texts} news texts x 10 labels per run, "
                 "one round")
    else:
        title = f"Speed: {args.model.name}, {args.texts} texts per run, median of {args.rounds} interleaved rounds"
        if args.replicas:
            title += f"; replicas: {args.replica_texts} texts, one round"
    return title + "\n\n" + "\n".join(lines)


def _plots(rows: list[dict[str, Any]], model: str, threads: int, results_dir: Path, cpu: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["threads"] == threads and r["model"] == model and "texts_per_s" in r]
    backends_seen = list(dict.fromkeys(r["backend"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in backends_seen:
        points = [(r["labels"], r["texts_per_s"]) for r in rows if r["backend"] == name and r["texts"] == "news"]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set(xlabel="candidate labels", ylabel="texts/s", title=f"Throughput vs labels (AG News, {threads} threads, {cpu})", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results_dir / "speed_labels.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    kinds = ["short sentence", "news", "long article"]
    width = 0.8 / len(backends_seen)
    for i, name in enumerate(backends_seen):
        values = [next((r["texts_per_s"] for r in rows if r["backend"] == name and r["texts"] == k and r["labels"] == 10), 0) for k in kinds]
        ax.bar([x + i * width for x in range(len(kinds))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(kinds))], kinds)
    ax.set(ylabel="texts/s (10 labels)", title=f"Throughput vs text length ({threads} threads, {cpu})", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results_dir / "speed_length.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
