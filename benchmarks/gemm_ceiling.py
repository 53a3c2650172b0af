"""What the speed targets ask of this CPU: measured matrix-multiply rates vs each backend's rate.

Usage:
    python benchmarks/gemm_ceiling.py [--bundle bundles/minilm] [--threads 2] [--speed benchmarks/results/speed/<CPU class>/speed.json]

Two measurements, one comparison:
- kernel rates: one FFN-sized product (512 tokens x hidden x intermediate, the bundle's own
  shapes at the runtime's 512-token cap) in ONNX Runtime, fp32 MatMul and the same graph through
  the exporter's dynamic int8 (s8 7-bit per-channel weights), median of 20 runs;
- work per text: the bundle's tokenizer on the 16 news texts x 10 labels bench_speed uses,
  with the encoder's multiply-adds per pair (L x T x (4H^2 + 2HI) + L x 2T^2H, the full model,
  as the pipeline computes it).
texts/s from bench_speed.py's results times the work per text gives the rate each backend
sustained, and 4x the pipeline's texts/s the rate that speed goal needs. Results:
benchmarks/results/ceiling/<CPU class>/ceiling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench_speed import TOPICS
from common import REPO, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, write_results

from zsl_onnx.internals import read_json
from zsl_onnx.internals import DEFAULT_TEMPLATE, build_hypotheses
from zsl_onnx.internals import PairTokenizer

TOKENS = 512  # the runtime's CPU token cap per micro-batch


def kernel_rates(hidden: int, intermediate: int, threads: int) -> dict[str, float]:
    """GFLOP/s (2 ops per multiply-add) of a [TOKENS, hidden] x [hidden, intermediate] product."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from zsl_onnx_export.internals import quantize_weights, rowquant

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.05, (hidden, intermediate)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="ffn")], "ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [TOKENS, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [TOKENS, intermediate])], [weight])
    x = rng.normal(0, 1, (TOKENS, hidden)).astype(np.float32)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(fp32))
        int8 = Path(tmp) / "int8.onnx"
        onnx.save(rowquant(model, {"ffn": quantize_weights(numpy_helper.to_array(weight))}), str(int8))
        for name, path in (("fp32 MatMul", fp32), ("int8 per-row (7-bit weights)", int8)):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for _ in range(5):
                session.run(None, {"x": x})
            times = []
            for _ in range(20):
                start = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - start)
            rates[name] = 2 * TOKENS * hidden * intermediate / float(np.median(times)) / 1e9
    return rates


def gflop_per_text(bundle: Path, texts: list[str], labels: list[str]) -> tuple[float, float]:
    """Full-model GFLOP per text and mean tokens per pair."""
    config = read_json(bundle / "config.json")
    tokenizer = PairTokenizer.from_file(bundle / "tokenizer.json", tokenizer_config=read_json(bundle / "tokenizer_config.json"),
                                        config=config, max_length=512)
    hypotheses = build_hypotheses(labels, DEFAULT_TEMPLATE)  # what bench_speed classifies with
    encoded = tokenizer.encode_hypotheses(hypotheses)
    lengths = [len(tokenizer.join(p, h).ids) for p in tokenizer.encode_premises(texts) for h in encoded]
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    macs = sum(layers * t * (4 * h * h + 2 * h * i) + layers * 2 * t * t * h for t in lengths)
    return 2 * macs / len(texts) / 1e9, float(np.mean(lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles" / "minilm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed", type=Path, help="bench_speed.py's speed.json (default: this CPU class's)")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("ceiling"))
    args = parser.parse_args()

    config = read_json(args.bundle / "config.json")
    rates = kernel_rates(config["hidden_size"], config["intermediate_size"], args.threads)
    news, _, _ = ag_news(16)
    work, tokens = gflop_per_text(args.bundle, news, TOPICS[:10])
    speed = json.loads((args.speed or machine_results_dir("speed") / "speed.json").read_text(encoding="utf-8"))
    measured = {r["backend"]: r["texts_per_s"] for r in speed["rows"]
                if r.get("texts") == "news" and r.get("labels") == 10 and r.get("threads") == args.threads
                and "texts_per_s" in r and "random weights" not in r["model"]}
    # (factor, a word in the backend's name, how the target names it): the throughput goals
    targets = ((4, "default", "the pipeline default"), (3, "best", "the pipeline at its best batch"),
               (1.5, "optimum", "optimum's ORT pipeline"))
    rows: list[dict[str, Any]] = [{"what": f"kernel: {k}, {TOKENS}x{config['hidden_size']}x{config['intermediate_size']}",
                                   "gflop_per_s": v} for k, v in rates.items()]
    rows += [{"what": f"backend: {k} ({v:.2f} texts/s)", "gflop_per_s": v * work} for k, v in measured.items()]
    for factor, word, name in targets:
        base = next(v for k, v in measured.items() if word in k)
        rows.append({"what": f"needed for {factor:g}x {name} ({factor * base:.2f} texts/s)", "gflop_per_s": factor * base * work})
    lines = ["| rate | GFLOP/s |", "|---|---|"] + [f"| {r['what']} | {r['gflop_per_s']:.0f} |" for r in rows]
    markdown = (f"Arithmetic rates, {args.threads} threads: news x 10 labels is {work:.1f} GFLOP per text "
                f"(full model, {tokens:.0f} tokens per pair on average)\n\n" + "\n".join(lines))
    write_results("ceiling", {"environment": environment(args.threads), "gflop_per_text": work,
                              "mean_tokens_per_pair": tokens, "rows": rows}, markdown,
                  args.results_dir or machine_results_dir("ceiling"))


if __name__ == "__main__":
    main()
