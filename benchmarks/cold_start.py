"""Cold start: a new process imports zsl_onnx, loads a bundle and makes its first prediction.

Usage: python benchmarks/cold_start.py BUNDLE [--variant int8] [--runs 5]

Reports, as medians over --runs fresh processes, the time from `import zsl_onnx` to the first
result (measured inside the process) and the wall time of the whole process (interpreter start
included), plus the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import environment

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import zsl_onnx
t1 = time.perf_counter()
clf = zsl_onnx.ZeroShotClassifier.from_pretrained(sys.argv[1], variant=sys.argv[2] or None)
t2 = time.perf_counter()
clf("A man is playing a guitar on stage.", ["music", "sports", "politics"])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_prediction_s": t3 - t2, "total_s": t3 - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch_loaded": "torch" in sys.modules}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--variant", default="")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, args.bundle, args.variant], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_wall_s"] = time.perf_counter() - start
        runs.append(result)
    keys = ["import_s", "load_s", "first_prediction_s", "total_s", "process_wall_s", "peak_rss_mb"]
    medians = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    print(json.dumps({"bundle": args.bundle, "variant": args.variant or "default", "runs": args.runs,
                      "median": medians, "torch_loaded": any(r["torch_loaded"] for r in runs),
                      "environment": environment(os.cpu_count() or 1)}, indent=2))


if __name__ == "__main__":
    main()
