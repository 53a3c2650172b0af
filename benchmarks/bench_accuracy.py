"""Accuracy of PyTorch vs zsl_onnx variants on NLI sets (SICK test, RTE dev) and zero-shot sets.

Usage:
    python benchmarks/bench_accuracy.py --bundle bundles/minilm [--model ../shared/fixtures/minilm-l6-sick-nli]
        [--zero-shot-limit 500] [--nli-limit N] [--threads 2]

NLI sets score explicit premise/hypothesis pairs (3-class SICK; RTE as entailment vs not).
Zero-shot sets (AG News topics, SST-2 sentiment) go through the classifier with the bundle's
template. Agreement is top-1 agreement with PyTorch on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import FIXTURE, RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, macro_f1, nli_predictions, rte_dev, sick_test, sst2_dev, write_results
from zsl_onnx import ZeroShotClassifier


def torch_backend(model_dir: Path, threads: int):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    pipe = pipeline("zero-shot-classification", model=model, tokenizer=tokenizer)

    def nli(premises, hypotheses, batch_size=32):
        out = []
        with torch.inference_mode():
            for i in range(0, len(premises), batch_size):
                enc = tokenizer(premises[i : i + batch_size], hypotheses[i : i + batch_size], padding=True, truncation="only_first", return_tensors="pt")
                out.append(model(**enc).logits.float().numpy())
        return np.concatenate(out)

    def zero_shot(texts, labels, template):
        results = pipe(texts, labels, hypothesis_template=template)
        return np.array([labels.index(r["labels"][0]) for r in results])

    return nli, zero_shot


def onnx_backend(clf: ZeroShotClassifier):
    def nli(premises, hypotheses):
        return clf.pair_logits(premises, hypotheses)

    def zero_shot(texts, labels, template):
        return clf.scores(texts, labels, hypothesis_template=template).argmax(axis=1)

    return nli, zero_shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path, help="zsl-export output for --model")
    parser.add_argument("--model", type=Path, default=FIXTURE, help="the transformers model the bundle came from")
    parser.add_argument("--variants", default="fp32,int8")
    parser.add_argument("--nli-limit", type=int, default=None)
    parser.add_argument("--zero-shot-limit", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    parser.add_argument("--output", default="accuracy", help="result file stem")
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("accuracy"))
    args = parser.parse_args()

    backends = {}
    if not args.no_torch:
        backends["pytorch"] = (torch_backend(args.model, args.threads), None)
    for variant in args.variants.split(","):
        clf = ZeroShotClassifier.from_pretrained(args.bundle, variant=variant, threads=args.threads)
        backends[f"onnx-{variant}"] = (onnx_backend(clf), clf)
    any_clf = next(clf for _, clf in backends.values() if clf is not None)
    labels = any_clf.scorer.labels
    class_map = [{"entail": 0, "neutra": 1, "contra": 2}.get(name.lower()[:6], 1) for name in labels.names]
    template = any_clf.hypothesis_template
    manifest = json.loads((args.bundle / "zsl_onnx.json").read_text())
    sizes = {f"onnx-{v}": round(e["size"] / 1e6, 1) for v, e in manifest["variants"].items()}

    rows = []
    for dataset in (sick_test(), rte_dev()):
        n = args.nli_limit or len(dataset.gold)
        premises, hypotheses, gold = dataset.premises[:n], dataset.hypotheses[:n], dataset.gold[:n]
        reference = None
        for name, ((nli, _), clf) in backends.items():
            start = time.perf_counter()
            logits = nli(premises, hypotheses)
            seconds = time.perf_counter() - start
            pred = nli_predictions(logits, labels.entailment, dataset.binary, class_map)
            reference = pred if reference is None else reference
            rows.append(_row(dataset.name, n, name, sizes.get(name), gold, pred, reference, n / seconds))

    for set_name, (texts, gold, topic_labels) in (
        ("AG News (zero-shot)", ag_news(args.zero_shot_limit)),
        ("SST-2 (zero-shot)", sst2_dev(args.zero_shot_limit)),
    ):
        reference = None
        for name, ((_, zero_shot), clf) in backends.items():
            start = time.perf_counter()
            pred = zero_shot(texts, topic_labels, template)
            seconds = time.perf_counter() - start
            reference = pred if reference is None else reference
            rows.append(_row(set_name, len(texts), name, sizes.get(name), gold, pred, reference, len(texts) * len(topic_labels) / seconds))

    header = "| set | n | backend | accuracy | macro-F1 | agreement with first backend | size MB | pairs/s |\n|---|---|---|---|---|---|---|---|"
    lines = [
        f"| {r['set']} | {r['n']} | {r['backend']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['agreement']:.4f} | {r['size_mb'] or '-'} | {r['pairs_per_s']:.0f} |"
        for r in rows
    ]
    first = next(iter(backends))
    markdown = f"Accuracy: {args.model.name} (agreement is with {first}), {args.threads} threads\n\n{header}\n" + "\n".join(lines)
    write_results(args.output, {"environment": environment(args.threads), "model": str(args.model), "bundle": str(args.bundle), "rows": rows}, markdown,
                  args.results_dir or machine_results_dir("accuracy"))


def _row(set_name, n, backend, size, gold, pred, reference, pairs_per_s):
    return {
        "set": set_name,
        "n": n,
        "backend": backend,
        "accuracy": float((pred == gold).mean()),
        "macro_f1": macro_f1(gold, pred),
        "agreement": float((pred == reference).mean()),
        "size_mb": size,
        "pairs_per_s": pairs_per_s,
    }


if __name__ == "__main__":
    main()
