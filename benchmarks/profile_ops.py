"""Where an ONNX model's time goes, by operator type (ONNX Runtime's own profiler).

Usage: python benchmarks/profile_ops.py BUNDLE [--variant fp32,int8] [--pairs 512] [--threads 2]

Runs the first --pairs SICK test pairs in batches of 32 (sorted by length, as the runtime
does) through each variant with profiling on, and prints each operator type's share of the
summed kernel time. This is how the int8 speed limit in docs/benchmarks.md was found.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import onnxruntime as ort

from common import environment, machine_line, sick_test
from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import make_batches


def profile(model_path: Path, batches: list, threads: int) -> Counter:
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        for batch in batches:
            session.run(["logits"], {n: getattr(batch, n) for n in names})
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--variant", default="fp32,int8")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = sick_test()
    print(machine_line(environment(args.threads)))
    for variant in args.variant.split(","):
        clf = ZeroShotClassifier.from_pretrained(args.bundle, variant=variant)
        tokenizer = clf.scorer.tokenizer  # the runtime's own pair encoding, so batches match real use
        premises = tokenizer.encode_premises(data.premises[: args.pairs])
        hypotheses = tokenizer.encode_hypotheses(data.hypotheses[: args.pairs])
        encodings = [tokenizer.join(p, h) for p, h in zip(premises, hypotheses)]
        batches = list(make_batches(encodings, batch_size=32, pad_id=tokenizer.pad_id))
        manifest = json.loads((args.bundle / "zsl_onnx.json").read_text())
        totals = profile(args.bundle / manifest["variants"][variant]["file"], batches, args.threads)
        total = sum(totals.values())
        print(f"{variant}: {total / 1000:.0f} ms kernel time for {args.pairs} pairs")
        for op, micros in totals.most_common(8):
            print(f"  {op:<28} {micros / total:6.1%}")


if __name__ == "__main__":
    main()
