"""zsl-classify on Ray against the local run: records/s, and what starting Ray costs.

Usage:
    python benchmarks/bench_ray.py [--bundle bundles/minilm] [--records 2000] [--variant fp32]

The same AG News records (title + description, one JSONL file) and the four topic labels go
through `zsl-classify` four ways, each a new process that starts (and stops) everything it
needs, so its wall time includes loading the model and, with --ray, starting a local cluster:
locally with 2 threads, and with --ray on 1 and 2 workers of 1 thread each. Outputs are
compared byte for byte with the local run's.

Steady-state rates leave start-up out: the local one times `ZeroShotClassifier` on the same
chunks in this process; the Ray ones start a local cluster here (timed: `ray.init`), start the
actors and load the model on them (timed), then time the chunks only. Ray's start-up cost is
those two timings plus `ray.shutdown`.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, write_results
from zsl_onnx import ZeroShotClassifier

FLUSH_EVERY = 256  # zsl-classify's default: records per chunk and per Ray task
CLI = """
import sys
from importlib.metadata import entry_points
sys.exit(entry_points(group="console_scripts")["zsl-classify"].load()(sys.argv[1:]))
"""


def run_cli(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"zsl-classify {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def steady_local(bundle: Path, texts: list[str], labels: list[str], variant: str | None, threads: int) -> float:
    clf = ZeroShotClassifier.from_pretrained(bundle, variant=variant, threads=threads)
    clf(texts[:8], labels)  # warm-up: the first run of a session allocates its buffers
    start = time.perf_counter()
    for i in range(0, len(texts), FLUSH_EVERY):
        clf(texts[i : i + FLUSH_EVERY], labels)
    return len(texts) / (time.perf_counter() - start)


def steady_ray(bundle: Path, texts: list[str], labels: list[str], variant: str | None, workers: int) -> dict[str, float]:
    import ray

    from zsl_onnx.ray import ChunkPool

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    pool = ChunkPool({"model": str(bundle), "labels": labels, "variant": variant}, workers=workers, threads=1)
    actors_s = time.perf_counter() - start
    chunks = [texts[i : i + FLUSH_EVERY] for i in range(0, len(texts), FLUSH_EVERY)]
    list(pool.map([texts[:8]] * workers, lambda chunk: chunk))  # warm-up, one chunk per actor
    start = time.perf_counter()
    done = sum(len(results) for _, results in pool.map(chunks, lambda chunk: chunk))
    rate = done / (time.perf_counter() - start)
    pool.close()
    start = time.perf_counter()
    ray.shutdown()
    return {"records_per_s": rate, "ray_init_s": init_s, "actors_and_model_s": actors_s,
            "ray_shutdown_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles" / "minilm")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--variant", choices=("fp32", "int8"), help="default: the bundle's CPU default")
    parser.add_argument("--output", default="ray")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("ray"))
    args = parser.parse_args()

    texts, _, labels = ag_news(args.records)
    variant = ["--variant", args.variant] if args.variant else []
    runs = [("local, 2 threads", ["--threads", "2"], None),
            ("--ray, 1 worker x 1 thread", ["--ray", "--workers", "1", "--threads", "1"], 1),
            ("--ray, 2 workers x 1 thread", ["--ray", "--workers", "2", "--threads", "1"], 2)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "ag_news.jsonl"
        source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
        common = ["--labels", ",".join(labels), "--flush-every", str(FLUSH_EVERY), "-q", *variant]
        for n, (name, options, workers) in enumerate(runs):
            out = work / f"out-{n}.jsonl"
            seconds = run_cli([str(args.bundle), str(source), "-o", str(out), *common, *options])
            row = {"run": name, "cli_seconds": seconds, "cli_records_per_s": len(texts) / seconds,
                   "same_bytes_as_local": out.read_bytes() == (work / "out-0.jsonl").read_bytes()}
            if workers is None:
                row["steady_records_per_s"] = steady_local(args.bundle, texts, labels, args.variant, 2)
            else:
                steady = steady_ray(args.bundle, texts, labels, args.variant, workers)
                row["steady_records_per_s"] = steady.pop("records_per_s")
                row.update(steady)
            rows.append(row)
            print(json.dumps(row), flush=True)

    local = rows[0]["steady_records_per_s"]
    lines = ["| run | zsl-classify end to end, s | records/s end to end | records/s steady | vs local steady "
             "| output = local | Ray init s | actors + model s | shutdown s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ray_cols = [f"{r[k]:.2f}" if k in r else "-" for k in ("ray_init_s", "actors_and_model_s", "ray_shutdown_s")]
        lines.append(f"| {r['run']} | {r['cli_seconds']:.1f} | {r['cli_records_per_s']:.1f} | "
                     f"{r['steady_records_per_s']:.1f} | {r['steady_records_per_s'] / local:.2f}x | "
                     f"{'yes' if r['same_bytes_as_local'] else 'NO'} | {' | '.join(ray_cols)} |")
    title = (f"zsl-classify --ray vs local, {len(texts):,} AG News records x {len(labels)} labels, "
             f"{args.bundle.name} ({args.variant or 'default variant'}), chunks of {FLUSH_EVERY}")
    write_results(args.output, {"environment": environment(2), "records": len(texts), "rows": rows},
                  f"{title}\n\n" + "\n".join(lines), args.results_dir or machine_results_dir("ray"))


if __name__ == "__main__":
    main()
