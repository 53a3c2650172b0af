"""Long documents (long_text="truncate" against "chunk") and one label set per record.

Usage:
    python benchmarks/bench_long_text.py long --bundle bundles/all-minilm-l6-v2 --nli-bundle bundles/minilm
    python benchmarks/bench_long_text.py label-sets --bundle bundles/all-minilm-l6-v2 --nli-bundle bundles/minilm

Long documents are made from AG News test items (title + description), seeded, in two sets:
- ``one class``: ``--items`` items of one class, so every window holds the answer;
- ``other opening``: an item of another class first, then ``--items - 1`` items of the gold class,
  so the text a truncating classifier reads is mostly the wrong class.
For each bundle the script reports accuracy with the window scores combined four ways: the
first window only (what truncation reads), chunk as shipped (mean of window scores, or for an
embedding bundle the mean of its windows' unit vectors), the max of window scores, and, for
embedding bundles, the mean of window scores; then texts/s of truncate and chunk, and the
seconds per document as documents grow from 1 to ``--items`` items.

``label-sets`` gives each AG News item its own label set (the four topics in a shuffled order
plus two distractors drawn from a pool), and times one call with all the sets against a loop of
one call per item, checking that both give the same results.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, write_results
from zsl_onnx import ZeroShotClassifier
from zsl_onnx.internals import split_windows

AG_LABELS = ["world politics", "sports", "business and economy", "science and technology"]
AG_TEMPLATE = "This news article is about {}."
DISTRACTORS = ["cooking", "fashion", "travel", "music", "health", "weather", "religion", "cars"]


def documents(n: int, items: int, other_opening: bool, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` documents of ``items`` AG News items each, with their gold class."""
    texts, gold, _ = ag_news()
    by_class = [[t for t, g in zip(texts, gold) if g == c] for c in range(4)]
    rng = random.Random(seed)
    docs, labels = [], []
    for _ in range(n):
        target = rng.randrange(4)
        parts = rng.sample(by_class[target], items)
        if other_opening:
            parts[0] = rng.choice(by_class[rng.choice([c for c in range(4) if c != target])])
        docs.append(" ".join(parts))
        labels.append(target)
    return docs, np.array(labels)


def window_rows(clf: ZeroShotClassifier, docs: list[str]) -> list[np.ndarray]:
    """Each document's window score rows, each window scored as an ordinary text."""
    hypotheses = [AG_TEMPLATE.format(label) for label in AG_LABELS]
    scorer = clf.scorer
    tokenizer = scorer.tokenizer
    if clf.kind == "nli":
        longest = max(len(e.ids) for e in tokenizer.encode_hypotheses(hypotheses))
        budget = scorer.max_length - tokenizer.pair_specials - longest - 4
    else:
        budget = scorer.max_length - tokenizer.specials - tokenizer.prompt_length(scorer.prompts.text) - 4
    windows = split_windows(tokenizer.probe, docs, budget, 16)
    scores = clf.scores(windows.texts, AG_LABELS, hypothesis_template=AG_TEMPLATE)
    return [scores[k] for k in windows.rows_of(len(docs))]


def accuracies(clf: ZeroShotClassifier, docs: list[str], gold: np.ndarray) -> dict[str, float]:
    rows = window_rows(clf, docs)
    shipped = clf.scores(docs, AG_LABELS, hypothesis_template=AG_TEMPLATE, long_text="chunk")
    result = {
        "truncate": clf.scores(docs, AG_LABELS, hypothesis_template=AG_TEMPLATE).argmax(1),
        "first window": np.array([r[0].argmax() for r in rows]),
        "chunk (shipped)": shipped.argmax(1),
        "max of window scores": np.array([r.max(0).argmax() for r in rows]),
    }
    if clf.kind == "embedding":
        result["mean of window scores"] = np.array([r.mean(0).argmax() for r in rows])
    return {name: float((pred == gold).mean()) for name, pred in result.items()}


def speed(clf: ZeroShotClassifier, docs: list[str], long_text: str) -> float:
    clf(docs[:2], AG_LABELS, hypothesis_template=AG_TEMPLATE, long_text=long_text)
    start = time.perf_counter()
    clf(docs, AG_LABELS, hypothesis_template=AG_TEMPLATE, long_text=long_text)
    return len(docs) / (time.perf_counter() - start)


def run_long(args: argparse.Namespace) -> None:
    for kind, path, n in (("embedding", args.bundle, args.docs), ("nli", args.nli_bundle, args.nli_docs)):
        if path is not None:
            _run_long_kind(args, kind, path, n)


def _run_long_kind(args: argparse.Namespace, kind: str, path: Path, n: int) -> None:
    """One bundle's long-document tables, written as long_text_<kind>.{json,md}."""
    data: dict[str, Any] = {"environment": environment(args.threads), "items": args.items}
    lines = [f"# Long documents: truncate against chunk (AG News, {args.items} items per document)", ""]
    clf = ZeroShotClassifier.from_pretrained(path, threads=args.threads)
    entry: dict[str, Any] = {"bundle": str(path), "variant": clf.variant, "max_length": clf.max_length}
    for name, other in (("one class", False), ("other opening", True)):
        docs, gold = documents(n, args.items, other)
        entry[name] = accuracies(clf, docs, gold)
    docs, _ = documents(n, args.items, False)
    entry["texts_per_s"] = {mode: speed(clf, docs, mode) for mode in ("truncate", "chunk")}
    entry["seconds_per_document"] = {
        items: 1 / speed(clf, documents(min(n, 40), items, False)[0], "chunk")
        for items in sorted({1, 2, 4, 8, args.items})
    }
    data[kind] = entry
    lines += _table(kind, entry, n)
    write_results(f"long_text_{kind}", data, "\n".join(lines), args.results_dir or machine_results_dir("long-text"))


def _table(kind: str, entry: dict[str, Any], n: int) -> list[str]:
    names = list(entry["one class"])
    lines = [f"## {kind} bundle ({entry['bundle']}, {entry['variant']}, max_length {entry['max_length']}, {n} documents per set)",
             "", "| combining windows | one class | other opening |", "|---|---|---|"]
    lines += [f"| {name} | {entry['one class'][name]:.3f} | {entry['other opening'][name]:.3f} |" for name in names]
    speeds = entry["texts_per_s"]
    lines += ["", f"texts/s: truncate {speeds['truncate']:.2f}, chunk {speeds['chunk']:.2f}", "",
              "| items per document | seconds per document (chunk) |", "|---|---|"]
    lines += [f"| {items} | {seconds:.3f} |" for items, seconds in entry["seconds_per_document"].items()]
    return lines + [""]


def run_label_sets(args: argparse.Namespace) -> None:
    texts, _, _ = ag_news(args.texts)
    rng = random.Random(1)
    sets = [rng.sample(AG_LABELS, 4) + rng.sample(DISTRACTORS, 2) for _ in texts]
    data: dict[str, Any] = {"environment": environment(args.threads), "texts": len(texts)}
    lines = ["# One label set per record: one call against a loop of single calls", "",
             "| bundle | one call, texts/s | loop, texts/s | speed-up | bit-identical | max score diff | same top label |",
             "|---|---|---|---|---|---|---|"]
    for kind, path in (("embedding", args.bundle), ("nli", args.nli_bundle)):
        if path is None:
            continue
        clf = ZeroShotClassifier.from_pretrained(path, threads=args.threads)
        clf(texts[:2], sets[:2], hypothesis_template=AG_TEMPLATE)
        start = time.perf_counter()
        together = clf(texts, sets, hypothesis_template=AG_TEMPLATE)
        one_call = time.perf_counter() - start
        start = time.perf_counter()
        alone = [clf(t, s, hypothesis_template=AG_TEMPLATE) for t, s in zip(texts, sets)]
        loop = time.perf_counter() - start
        same = together == alone
        diff = max(abs(a - b) for t, s in zip(together, alone) for a, b in zip(t["scores"], s["scores"]))
        tops = sum(t["labels"][0] == s["labels"][0] for t, s in zip(together, alone)) / len(texts)
        data[kind] = {"bundle": str(path), "variant": clf.variant, "one_call_texts_per_s": len(texts) / one_call,
                      "loop_texts_per_s": len(texts) / loop, "same_results": same, "max_abs_score_diff": diff,
                      "same_top_label": tops}
        lines.append(f"| {kind} ({clf.variant}) | {len(texts) / one_call:.1f} | {len(texts) / loop:.1f} | "
                     f"{loop / one_call:.2f}x | {'yes' if same else 'no'} | {diff:.2g} | {tops:.4f} |")
    write_results("label_sets", data, "\n".join(lines), args.results_dir or machine_results_dir("long-text"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["long", "label-sets"])
    parser.add_argument("--bundle", type=Path, help="an embedding bundle (e.g. bundles/all-minilm-l6-v2)")
    parser.add_argument("--nli-bundle", type=Path, help="an NLI bundle (e.g. bundles/minilm)")
    parser.add_argument("--items", type=int, default=12, help="AG News items per long document")
    parser.add_argument("--docs", type=int, default=200, help="documents per set, embedding bundle")
    parser.add_argument("--nli-docs", type=int, default=100, help="documents per set, NLI bundle")
    parser.add_argument("--texts", type=int, default=400, help="label-sets: AG News items")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("long-text"))
    args = parser.parse_args()
    (run_long if args.what == "long" else run_label_sets)(args)


if __name__ == "__main__":
    main()
