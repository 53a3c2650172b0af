"""zsl-serve: requests/s and latency over HTTP, against the same work in process, batching on and off.

Usage:
    python benchmarks/bench_serve.py --bundle bundles/minilm [--threads 2] [--clients 1,8,64]
        [--labels 5,10] [--requests 512] [--results-dir benchmarks/results/serve]

Each client sends one text at a time (AG News titles and descriptions when ../shared has them,
else built-in sentences) with 5 or 10 labels, and sends the next as soon as the answer
arrives. Rows, all in one run on one machine:

- in process, one text at a time: ``clf(text, labels)`` in a loop (the floor of per-request cost);
- in process, one batched call: ``clf(texts, labels)`` (the ceiling batching can approach);
- zsl-serve with dynamic batching (the defaults), for 1, 8 and 64 concurrent clients;
- zsl-serve with batching off (``--max-batch-size 1``), for the same clients.

Requests/s is requests over wall time; latency percentiles are per request, as the client
sees them. The server runs in a separate process with ``--threads`` onnxruntime threads; the
clients share this process's cores, as they would on one machine.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS_DIR_HELP, SHARED, ag_news, environment, machine_results_dir, write_results

LABELS = ["world", "sports", "business", "science and technology", "politics", "health", "entertainment",
          "education", "travel", "weather"]
FALLBACK_TEXTS = [
    "The match went to extra time after a late equaliser.",
    "Stocks fell after the central bank raised interest rates.",
    "Parliament voted on the new immigration law.",
    "A new vaccine trial reported strong results in older patients.",
    "The film festival opened with a documentary about jazz.",
    "Heavy snow closed the mountain passes for a second day.",
    "The startup released an open-source database engine.",
    "Teachers went on strike over pay and class sizes.",
]


def load_texts(count: int) -> list[str]:
    if (SHARED / "data" / "ag_news" / "test.csv").exists():
        texts, _, _ = ag_news(count)
        return texts
    return [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] for i in range(count)]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"requests": len(latencies), "requests_per_s": len(latencies) / wall,
            "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def in_process_rows(bundle: Path, threads: int, texts: list[str], labels: list[str]) -> list[dict[str, Any]]:
    """The same requests without HTTP: one text at a time, then one call over all of them."""
    from zsl_onnx import ZeroShotClassifier

    clf = ZeroShotClassifier.from_pretrained(bundle, threads=threads)
    clf(texts[:2], labels)  # warm-up
    latencies, start = [], time.perf_counter()
    for text in texts:
        began = time.perf_counter()
        clf(text, labels)
        latencies.append(time.perf_counter() - began)
    alone = summary(latencies, time.perf_counter() - start)
    start = time.perf_counter()
    clf(texts, labels)
    wall = time.perf_counter() - start
    batched = {"requests": len(texts), "requests_per_s": len(texts) / wall, "p50_ms": None, "p95_ms": None,
               "p99_ms": wall * 1000}
    return [{"mode": "in process, one text at a time", "clients": 1, **alone},
            {"mode": "in process, one batched call", "clients": 1, **batched}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(bundle: Path, threads: int, extra: list[str], log: Path) -> Iterator[str]:
    """A zsl-serve process on a free loopback port, ready; stopped with SIGTERM afterwards."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "zsl_onnx.serve", str(bundle), "--port", str(port), "--threads", str(threads),
               "--max-queue", "1024", "--log-level", "warning", *extra]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"zsl-serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"zsl-serve not ready after 300 s:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(60)


def http_row(url: str, clients: int, texts: list[str], labels: list[str]) -> dict[str, Any]:
    """``clients`` threads, each sending its share of ``texts`` one request at a time."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    shares = [texts[i::clients] for i in range(clients)]
    with httpx.Client(base_url=url, timeout=300, limits=limits) as client:
        client.post("/v1/classify", json={"sequences": texts[0], "candidate_labels": labels})  # warm connection

        def run(share: list[str]) -> list[float]:
            latencies = []
            for text in share:
                began = time.perf_counter()
                answer = client.post("/v1/classify", json={"sequences": text, "candidate_labels": labels})
                answer.raise_for_status()
                latencies.append(time.perf_counter() - began)
            return latencies

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = [x for share in pool.map(run, shares) for x in share]
        wall = time.perf_counter() - start
    return {"clients": clients, **summary(latencies, wall)}


def served_rows(bundle: Path, args: argparse.Namespace, texts: list[str], workdir: Path) -> list[dict[str, Any]]:
    rows = []
    modes: list[tuple[str, list[str]]] = [("zsl-serve, dynamic batching", ["--max-wait-ms", str(args.max_wait_ms)]),
                                          ("zsl-serve, batching off", ["--max-batch-size", "1"])]
    for mode, extra in modes:
        with server(bundle, args.threads, extra, workdir / f"{len(rows)}.log") as url:
            for n_labels in args.labels:
                for clients in args.clients:
                    row = http_row(url, clients, texts, LABELS[:n_labels])
                    rows.append({"mode": mode, "labels": n_labels, **row})
                    print(f"{mode}, {n_labels} labels, {clients} clients: {row['requests_per_s']:.1f} req/s", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], bundle: Path, requests: int) -> str:
    lines = [f"zsl-serve on `{bundle.name}`: {requests} requests of one text each per row; latency in ms "
             "as the client sees it (the batched in-process call: its one wall time under p99).", "",
             "| labels | mode | clients | requests/s | p50 | p95 | p99 |", "|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (r["labels"], r["mode"], r["clients"])):
        lines.append(f"| {row['labels']} | {row['mode']} | {row['clients']} | {row['requests_per_s']:.1f} | "
                     f"{cell(row['p50_ms'])} | {cell(row['p95_ms'])} | {cell(row['p99_ms'])} |")
    return "\n".join(lines)


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle directory (e.g. bundles/minilm)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64])
    parser.add_argument("--labels", type=lambda s: [int(x) for x in s.split(",")], default=[5, 10])
    parser.add_argument("--requests", type=int, default=512, help="requests per row")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("serve"))
    parser.add_argument("--output", default="serve")
    args = parser.parse_args()
    if max(args.labels) > len(LABELS):
        parser.error(f"--labels goes up to {len(LABELS)}")
    texts = load_texts(args.requests)
    rows = []
    for n_labels in args.labels:
        for row in in_process_rows(args.bundle, args.threads, texts, LABELS[:n_labels]):
            rows.append({"labels": n_labels, **row})
    with tempfile.TemporaryDirectory() as workdir:
        rows += served_rows(args.bundle, args, texts, Path(workdir))
    data = {"environment": environment(args.threads), "bundle": str(args.bundle), "requests": args.requests,
            "rows": rows}
    write_results(args.output, data, markdown(rows, args.bundle, args.requests),
                  args.results_dir or machine_results_dir("serve"))


if __name__ == "__main__":
    main()
