"""zsl-classify: throughput against the Python API, and peak memory as the input grows.

Usage:
    python benchmarks/bench_classify.py [--bundle bundles/minilm] [--records 2000]
        [--rss-bundle DIR] [--rss-sizes 10000,1000000] [--threads 2]

Throughput: the same AG News records (title + description) and the four topic labels go
through `zsl-classify` (a new process, JSONL in and out, so its time includes start-up, reading,
writing and checkpointing) and through `ZeroShotClassifier` in this process, in chunks of the
CLI's --flush-every so both run identical batches.

Memory: synthetic files of short records (--rss-sizes) go through `zsl-classify` with two
labels; each run's peak RSS is read inside the process. This uses --rss-bundle, by default a
tiny random-weight BERT built and exported here, because a million records through a real
model takes hours on 2 cores and the question is whether memory grows with the input, which
does not depend on the model's size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, write_results
from zsl_onnx import ZeroShotClassifier

# Peak RSS from VmHWM: getrusage's ru_maxrss in a child starts from the parent's peak at
# fork on Linux (this script's parent holds torch when it builds the tiny model).
CHILD = r"""
import sys
from importlib.metadata import entry_points
main = entry_points(group="console_scripts")["zsl-classify"].load()  # the installed command
code = main(sys.argv[1:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(f"PEAK_RSS_KB {hwm.split()[1]}", file=sys.stderr)
sys.exit(code)
"""
FLUSH_EVERY = 256


def run_cli(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one zsl-classify process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"zsl-classify failed:\n{done.stderr}")
    line = next(l for l in done.stderr.splitlines() if l.startswith("PEAK_RSS_KB"))
    return seconds, int(line.split()[1]) / 1024


def tiny_bundle(workdir: Path) -> Path:
    from zsl_onnx_export import export_bundle
    from tiny_models import build_model

    source = build_model("bert", workdir / "tiny-source")
    return export_bundle(source, workdir / "tiny-bundle").output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles" / "minilm")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rss-bundle", type=Path, help="bundle for the memory runs (default: a tiny BERT built here)")
    parser.add_argument("--rss-sizes", default="10000,1000000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="classify")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("classify"))
    args = parser.parse_args()

    texts, _, labels = ag_news(args.records)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "ag_news.jsonl"
        source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
        common = ["--labels", ",".join(labels), "--threads", str(args.threads), "--flush-every", str(FLUSH_EVERY), "-q"]
        cli_s, cli_rss = run_cli([str(args.bundle), str(source), "-o", str(work / "out.jsonl"), *common])

        start = time.perf_counter()
        clf = ZeroShotClassifier.from_pretrained(args.bundle, threads=args.threads)
        for i in range(0, len(texts), FLUSH_EVERY):
            clf(texts[i : i + FLUSH_EVERY], labels)
        api_s = time.perf_counter() - start
        rows.append({"what": f"throughput, {len(texts)} AG News records x {len(labels)} labels, {args.bundle.name}",
                     "cli_records_per_s": len(texts) / cli_s, "api_records_per_s": len(texts) / api_s,
                     "cli_vs_api": api_s / cli_s, "cli_peak_rss_mb": cli_rss})

        rss_bundle = args.rss_bundle or tiny_bundle(work)
        for size in (int(s) for s in args.rss_sizes.split(",")):
            synthetic = work / f"synthetic-{size}.jsonl"
            with synthetic.open("w", encoding="utf-8") as handle:
                for i in range(size):
                    handle.write(f'{{"id": {i}, "text": "Short record number {i} about the weather."}}\n')
            seconds, rss = run_cli([str(rss_bundle), str(synthetic), "-o", str(work / f"out-{size}.jsonl"),
                                    "--labels", "weather,sports", "--threads", str(args.threads), "-q"])
            rows.append({"what": f"memory, {size:,} synthetic records x 2 labels, tiny BERT",
                         "cli_records_per_s": size / seconds, "cli_peak_rss_mb": rss})
            synthetic.unlink()
            (work / f"out-{size}.jsonl").unlink()

    lines = ["| run | zsl-classify records/s | Python API records/s | CLI speed / API speed | zsl-classify peak RSS MB |",
             "|---|---|---|---|---|"]
    for r in rows:
        api = f"{r['api_records_per_s']:.1f}" if "api_records_per_s" in r else "-"
        ratio = f"{r['cli_vs_api']:.2f}x" if "cli_vs_api" in r else "-"
        lines.append(f"| {r['what']} | {r['cli_records_per_s']:.1f} | {api} | {ratio} | {r['cli_peak_rss_mb']:.0f} |")
    markdown = f"zsl-classify, {args.threads} threads\n\n" + "\n".join(lines)
    write_results(args.output, {"environment": environment(args.threads), "rows": rows}, markdown,
                  args.results_dir or machine_results_dir("classify"))


if __name__ == "__main__":
    main()
