"""Parity report: zsl_onnx vs the transformers pipeline for every family, on random-weight tiny models.

Usage: python benchmarks/parity.py [--fixture]

For each family and label map it builds a tiny model, exports it with zsl-export, and compares
the pipeline's results with zsl_onnx fp32 and int8 on single-label, multi-label, one-label,
comma-string and long inputs: label order identical?, max |score diff|. With --fixture, the
trained model in ../shared is added.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

from common import FIXTURE, RESULTS, environment, write_results
from zsl_onnx import ZeroShotClassifier
from zsl_onnx_export import export_bundle
from tiny_models import FAMILIES, NLI2, NLI3, PARITY_CASES, build_model



def compare(pipe, clf) -> tuple[bool, float]:
    same, worst = True, 0.0
    for sequences, labels, kwargs in PARITY_CASES:
        expected, got = pipe(sequences, labels, **kwargs), clf(sequences, labels, **kwargs)
        expected = expected if isinstance(expected, list) else [expected]
        got = got if isinstance(got, list) else [got]
        for e, g in zip(expected, got):
            same &= e["labels"] == g["labels"]
            by_label = dict(zip(g["labels"], g["scores"]))
            worst = max(worst, max(abs(score - by_label[label]) for label, score in zip(e["labels"], e["scores"])))
    return same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", action="store_true", help="also check ../shared's trained fixture")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from transformers import pipeline

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [(f"{family} {len(labels)}-class", family, labels) for family in FAMILIES for labels in (NLI3, NLI2)]
        if args.fixture:
            models.append(("fixture minilm-l6-sick-nli (trained)", None, None))
        for name, family, labels in models:
            source = FIXTURE if family is None else build_model(family, Path(tmp) / name / "source", labels=labels)
            manifest = export_bundle(source, Path(tmp) / name / "bundle").manifest
            pipe = pipeline("zero-shot-classification", model=str(source))
            row = {"model": name, "export fp32 max |logit diff|": manifest["variants"]["fp32"]["fidelity"]["max_abs_logit_diff"]}
            for variant in ("fp32", "int8"):
                same, worst = compare(pipe, ZeroShotClassifier.from_pretrained(Path(tmp) / name / "bundle", variant=variant))
                row[f"{variant} same order"] = same
                row[f"{variant} max |score diff|"] = worst
            rows.append(row)
            print(row, flush=True)
    keys = list(rows[0])
    markdown = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n" + "\n".join(
        "| " + " | ".join(f"{r[k]:.2e}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |" for r in rows
    )
    write_results("parity", {"environment": environment(os.cpu_count() or 1), "rows": rows}, markdown, RESULTS / "parity")


if __name__ == "__main__":
    main()
