"""Does the embedding int8 guard's verdict hold on real text? Every candidate the guard tried.

Usage (from the repository root):
    python benchmarks/embedding_guard_study.py --bundle bundles/all-minilm-l6-v2 [--limit 2000]

BUNDLE is an embedding export whose manifest lists the guard's candidates (MatMuls kept fp32
and the guard's figures). Each candidate is rebuilt exactly as the guard built it (same
activation statistics, same weights) in a temporary copy of the bundle, and measured on the
first ``--limit`` AG News test items and on SST-2 dev: top-1 agreement with fp32 and the rms
shift int8 gives each decision's margin (top label minus runner-up), beside the guard's own
expected and counted agreement. The median fp32 margin of each set says how close its
decisions are. Texts go through the candidate; label hypotheses through fp32 or the candidate
(``--labels``), which splits int8's effect on text vectors from its effect on label vectors.
Agreement is not a timing: any machine gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench_embedding import AG_LABELS, AG_TEMPLATE, SST2_LABELS, SST2_TEMPLATE
from common import RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, sst2_dev, write_results

from zsl_onnx.internals import build_hypotheses, load_embedding_scorer, read_bundle
from zsl_onnx_export.internals import (
    GUARD_LABEL_SETS, VALIDATION_TEXTS, QuantConfig, RowQuantizer, builtin_labelled, embedding_statistics,
    expected_agreement, save_model,
)


# QuantConfig fields a guard report records (a report without rotation or paired_weights: their defaults)
SETTINGS = ("smooth_alpha", "gptq", "unsigned", "rotation", "paired_weights")


def cosines(
    bundle: Path, model: Path, sets: dict[str, tuple[list[str], list[str], str]], threads: int,
    label_model: Path | None = None,
) -> dict[str, Any]:
    """Cosines [texts, labels] of each named (texts, labels, template) set through the runtime
    (label hypotheses encoded by ``label_model`` when given, as the bundle's int8 variant does)."""
    scorer = load_embedding_scorer(read_bundle(bundle), model, label_model_path=label_model, max_length=None,
                                   providers=None, threads=threads, session_options=None)
    return {name: scorer.cosines(texts, build_hypotheses(labels, template), batch_size=32)
            for name, (texts, labels, template) in sets.items()}


def median_margin(matrices: list[np.ndarray]) -> float:
    top2 = np.concatenate([np.sort(m, axis=1)[:, -2:] for m in matrices])
    return float(np.median(top2[:, 1] - top2[:, 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="embedding bundle with an int8 guard report")
    parser.add_argument("--limit", type=int, default=2000, help="first N AG News test items (default 2000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labels", choices=["fp32", "int8"],
                        help="which model encodes the label hypotheses of each candidate (default: as the bundle's "
                             "int8 variant does, fp32 where its manifest says label_variant fp32)")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("embedding_guard_study"))
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "zsl_onnx.json").read_text(encoding="utf-8"))
    guard = manifest.get("variants", {}).get("int8", {}).get("quantization", {}).get("guard")
    if guard is None:
        raise SystemExit(f"{args.bundle} has no int8 guard report (export it with int8)")
    template = manifest["hypothesis_template"]
    labels_by = args.labels or manifest["variants"]["int8"].get("label_variant") or "int8"  # no label_variant: int8
    guard_texts = [item.text for item in builtin_labelled()]
    sets = {"AG News": (ag_news(args.limit)[0], AG_LABELS, AG_TEMPLATE), "SST-2": (sst2_dev()[0], SST2_LABELS, SST2_TEMPLATE)}
    sets.update({f"guard {i}": (guard_texts, list(labels), template) for i, labels in enumerate(GUARD_LABEL_SETS)})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        shutil.copytree(args.bundle, bundle, ignore=shutil.ignore_patterns("model_quantized.onnx*", "model_fp16.onnx*"))
        fp32 = bundle / manifest["variants"]["fp32"]["file"]
        model = onnx.load(str(fp32))
        stats = embedding_statistics(bundle, fp32, model, list(VALIDATION_TEXTS), GUARD_LABEL_SETS, template, False)
        quantizer = RowQuantizer(model, stats)
        reference = cosines(bundle, fp32, sets, args.threads)
        margins = {"AG News": median_margin([reference["AG News"]]), "SST-2": median_margin([reference["SST-2"]]),
                   "guard": median_margin([reference[k] for k in reference if k.startswith("guard")])}
        candidate_path = bundle / "onnx" / "candidate.onnx"
        for tried in guard["candidates"]:
            excluded = tried["config"]["nodes_to_exclude"]
            recorded = {key: tried["config"][key] for key in SETTINGS if key in tried["config"]}
            config = QuantConfig("study", **recorded)
            config = config.excluding(excluded) if excluded else config
            save_model(quantizer.build(config), candidate_path, external_data=False)
            measured = cosines(bundle, candidate_path, {k: sets[k] for k in ("AG News", "SST-2")}, args.threads,
                               label_model=fp32 if labels_by == "fp32" else None)
            row = {"fp32_matmuls": len(excluded), "guard_expected": tried["expected_agreement"],
                   "guard_counted": tried["top1_agreement"], "guard_shift_rms": tried["margin_shift_rms"]}
            for name in ("AG News", "SST-2"):
                ref, got = reference[name], measured[name]
                row[f"{name} agreement"] = float((ref.argmax(1) == got.argmax(1)).mean())
                row[f"{name} shift_rms"] = expected_agreement([ref], [got])[1]
            rows.append(row)
            print(row, flush=True)
    header = ("| MatMuls in fp32 | guard: expected / counted agreement, shift rms | AG News: agreement, shift rms "
              "| SST-2: agreement, shift rms |\n|---|---|---|---|")
    lines = [f"| {r['fp32_matmuls']} | {r['guard_expected']:.2%} / {r['guard_counted']:.2%}, {r['guard_shift_rms']:.4f} "
             f"| {r['AG News agreement']:.2%}, {r['AG News shift_rms']:.4f} | {r['SST-2 agreement']:.2%}, "
             f"{r['SST-2 shift_rms']:.4f} |" for r in rows]
    markdown = (f"Embedding int8 guard vs real text: {manifest['source']['model']}, every candidate the guard tried "
                f"(texts through int8, label hypotheses through {labels_by}); AG News first {args.limit}, SST-2 dev. "
                f"Median fp32 margin: AG News {margins['AG News']:.3f}, SST-2 {margins['SST-2']:.3f}, "
                f"guard decisions {margins['guard']:.3f}\n\n{header}\n" + "\n".join(lines))
    write_results("embedding_guard_study", {"environment": environment(args.threads), "margins": margins,
                                            "label_variant": labels_by, "rows": rows},
                  markdown, args.results_dir or machine_results_dir("embedding_guard_study"))


if __name__ == "__main__":
    main()
