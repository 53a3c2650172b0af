"""Long documents (long_text="truncate" against "chunk") and one label set per record.

Usage:
    python benchmarks/bench_long_text.py long --bundle bundles/all-minilm-l6-v2 --nli-bundle bundles/minilm
    python benchmarks/bench_long_text.py aggregation --bundle bundles/all-minilm-l6-v2 --items 12
    python benchmarks/bench_long_text.py aggregation --nli-bundle bundles/minilm --items 32 --nli-docs 16
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

``aggregation`` scores every window once and combines the window scores several ways, single-
and multi-label, so the alternatives cost no extra inference: truncate, the first window, the
mean and the max of window scores and, for embedding bundles, the mean of window vectors (what
ships for them single-label; multi-label ships the max of window scores for both kinds); the
shipped way is marked and checked against ``long_text="chunk"`` itself.
Single-label uses the two sets above (accuracy); multi-label uses documents of two classes, half
the items of class A then half of class B, and the same items with B first: do both true
classes rank in the top two (top-2 recall, and the share of documents whose top two are exactly
the true pair)?

``label-sets`` gives each AG News item its own label set (the four topics in a shuffled order
plus two distractors drawn from a pool), and times one call with all the sets against a loop of
one call per item, checking that both give the same results.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS_DIR_HELP, ag_news, environment, machine_results_dir, write_results
from zsl_onnx import TruncationWarning, ZeroShotClassifier
from zsl_onnx.internals import (DEFAULT_BATCH_SIZE, Windows, cosine_matrix, label_scores, pool_windows,
                                similarity_scores, split_windows)

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


def window_split(clf: ZeroShotClassifier, docs: list[str]) -> Windows:
    """The windows long_text="chunk" reads for ``docs`` with the AG News labels (same budget)."""
    hypotheses = [AG_TEMPLATE.format(label) for label in AG_LABELS]
    scorer = clf.scorer
    tokenizer = scorer.tokenizer
    if clf.kind == "nli":
        longest = max(len(e.ids) for e in tokenizer.encode_hypotheses(hypotheses))
        budget = scorer.max_length - tokenizer.pair_specials - longest - 4
    else:
        budget = scorer.max_length - tokenizer.specials - tokenizer.prompt_length(scorer.prompts.text) - 4
    return split_windows(tokenizer.probe, docs, budget, 16)


def window_rows(clf: ZeroShotClassifier, docs: list[str]) -> list[np.ndarray]:
    """Each document's window score rows, each window scored as an ordinary text."""
    windows = window_split(clf, docs)
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


# -- aggregation: one scoring of every window, combined several ways ---------------------------


def two_class_documents(n: int, items: int, seed: int = 2) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` documents of two classes A and B (half the items each): A's items first, then the
    same items with B's first; and the gold pair of each."""
    texts, gold, _ = ag_news()
    by_class = [[t for t, g in zip(texts, gold) if g == c] for c in range(4)]
    rng = random.Random(seed)
    first, reverse, pairs = [], [], []
    for _ in range(n):
        a, b = rng.sample(range(4), 2)
        part_a, part_b = rng.sample(by_class[a], items // 2), rng.sample(by_class[b], items - items // 2)
        first.append(" ".join(part_a + part_b))
        reverse.append(" ".join(part_b + part_a))
        pairs.append((a, b))
    return first, reverse, np.array(pairs)


@dataclass(frozen=True)
class Scored:
    """One set of documents scored once, single- and multi-label (``False``/``True`` keys)."""

    windows: dict[bool, list[np.ndarray]]  # per document, its window score rows [windows, labels]
    truncated: dict[bool, np.ndarray]  # [documents, labels]: the text truncation reads
    pooled: dict[bool, np.ndarray] | None  # embedding bundles: the mean of the windows' unit vectors, scored
    counts: list[int]  # windows per document


def score_once(clf: ZeroShotClassifier, docs: list[str]) -> Scored:
    """Every window through the model once (and each truncated document once); both kinds of
    scores follow from the same logits or vectors, so the combinations cost no inference."""
    windows = window_split(clf, docs)
    groups = windows.rows_of(len(docs))
    pooled = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # truncation is what is measured
        if clf.kind == "nli":
            rows, truncated = _nli_scores(clf, windows.texts), _nli_scores(clf, docs)
        else:
            vectors = clf.embed(windows.texts)
            rows, truncated = _embedding_scores(clf, vectors), _embedding_scores(clf, clf.embed(docs))
            pooled = _embedding_scores(clf, np.stack([pool_windows(vectors[g]) for g in groups]))
    return Scored({m: [rows[m][g] for g in groups] for m in MODES}, truncated, pooled, [len(g) for g in groups])


MODES = (False, True)  # multi_label


def _nli_scores(clf: ZeroShotClassifier, texts: list[str]) -> dict[bool, np.ndarray]:
    hypotheses = [AG_TEMPLATE.format(label) for label in AG_LABELS]
    premises = [text for text in texts for _ in hypotheses]
    logits = clf.pair_logits(premises, hypotheses * len(texts)).reshape(len(texts), len(hypotheses), -1)
    return {m: label_scores(logits, clf.scorer.labels, multi_label=m) for m in MODES}


def _embedding_scores(clf: ZeroShotClassifier, vectors: np.ndarray) -> dict[bool, np.ndarray]:
    hypotheses = [AG_TEMPLATE.format(label) for label in AG_LABELS]
    cosines = cosine_matrix(vectors, clf.scorer.label_vectors(hypotheses, batch_size=DEFAULT_BATCH_SIZE))
    return {m: similarity_scores(cosines, clf.scorer.scoring, multi_label=m) for m in MODES}


def combinations(scored: Scored, multi_label: bool, kind: str) -> dict[str, np.ndarray]:
    """Score matrices [documents, labels] by way of combining windows; the shipped one marked."""
    rows = scored.windows[multi_label]
    out = {"truncate": scored.truncated[multi_label], "first window": np.stack([r[0] for r in rows]),
           "mean of window scores": np.stack([r.mean(0) for r in rows]),
           "max of window scores": np.stack([r.max(0) for r in rows])}
    if scored.pooled is not None:
        out["mean of window vectors"] = scored.pooled[multi_label]
    if multi_label:
        shipped = "max of window scores"
    else:
        shipped = "mean of window vectors" if kind == "embedding" else "mean of window scores"
    out[f"{shipped} (shipped)"] = out.pop(shipped)
    return out


def top2(scores: np.ndarray, pairs: np.ndarray) -> tuple[float, float]:
    """Share of the true labels among each document's top two; share of exactly right top twos."""
    best = np.argsort(-scores, axis=1, kind="stable")[:, :2]
    hits = np.array([len(set(b) & set(p)) for b, p in zip(best.tolist(), pairs.tolist())])
    return float(hits.mean() / 2), float((hits == 2).mean())


def shipped_check(clf: ZeroShotClassifier, docs: list[str], scored: Scored) -> float:
    """Largest difference between the benchmark's shipped combination and long_text="chunk"
    itself, on two documents: the tables measure the product, not a copy of it."""
    worst = 0.0
    for multi_label in MODES:
        product = clf.scores(docs[:2], AG_LABELS, hypothesis_template=AG_TEMPLATE, multi_label=multi_label,
                             long_text="chunk")
        mine = [v for k, v in combinations(scored, multi_label, clf.kind).items() if k.endswith("(shipped)")][0]
        worst = max(worst, float(np.abs(product - mine[:2]).max()))
    return worst


def run_aggregation(args: argparse.Namespace) -> None:
    for kind, path, n in (("embedding", args.bundle, args.docs), ("nli", args.nli_bundle, args.nli_docs)):
        if path is not None:
            _run_aggregation_kind(args, kind, path, n)


def _run_aggregation_kind(args: argparse.Namespace, kind: str, path: Path, n: int) -> None:
    """One bundle's tables, written as aggregation_<kind>.{json,md}."""
    clf = ZeroShotClassifier.from_pretrained(path, threads=args.threads)
    entry: dict[str, Any] = {"bundle": str(path), "variant": clf.variant, "max_length": clf.max_length,
                             "documents_per_set": n, "single_label": {}, "multi_label": {}, "windows_per_document": {}}
    for name, other in (("one class", False), ("other opening", True)):
        docs, gold = documents(n, args.items, other)
        scored = score_once(clf, docs)
        if name == "one class":
            entry["shipped_check_max_abs_diff"] = shipped_check(clf, docs, scored)
        entry["windows_per_document"][name] = _window_counts(scored)
        entry["single_label"][name] = {k: float((v.argmax(1) == gold).mean())
                                       for k, v in combinations(scored, False, kind).items()}
    first, reverse, pairs = two_class_documents(n, args.items)
    for name, docs in (("A then B", first), ("B then A", reverse)):
        scored = score_once(clf, docs)
        entry["windows_per_document"][name] = _window_counts(scored)
        entry["multi_label"][name] = {k: dict(zip(("top2_recall", "exact_top2"), top2(v, pairs)))
                                      for k, v in combinations(scored, True, kind).items()}
    data = {"environment": environment(args.threads), "items": args.items, kind: entry}
    write_results(f"aggregation_{kind}", data, "\n".join(_aggregation_table(kind, entry, args.items)),
                  args.results_dir or machine_results_dir("long-text"))


def _window_counts(scored: Scored) -> dict[str, float]:
    counts = np.array(scored.counts)
    return {"mean": float(counts.mean()), "min": int(counts.min()), "max": int(counts.max()),
            "share_over_one": float((counts > 1).mean())}


def _aggregation_table(kind: str, entry: dict[str, Any], items: int) -> list[str]:
    single, multi = entry["single_label"], entry["multi_label"]
    lines = [f"# Combining windows: single- and multi-label (AG News, {items} items per document)", "",
             f"{kind} bundle {entry['bundle']} ({entry['variant']}, max_length {entry['max_length']}), "
             f"{entry['documents_per_set']} documents per set; every window scored once, combined each way.",
             "", "Windows per document: " + "; ".join(
                 f"{name} {c['mean']:.1f} ({c['min']}-{c['max']}, {c['share_over_one']:.0%} over one)"
                 for name, c in entry["windows_per_document"].items()), "",
             f"Shipped combination against long_text=\"chunk\" itself (two documents): max abs diff "
             f"{entry['shipped_check_max_abs_diff']:.2g}.", "",
             "## Single-label: accuracy", "", "| combining windows | one class | other opening |", "|---|---|---|"]
    lines += [f"| {name} | {single['one class'][name]:.3f} | {single['other opening'][name]:.3f} |"
              for name in single["one class"]]
    lines += ["", "## Multi-label, two classes per document: top-2 recall / exact top-2 set", "",
              "| combining windows | A then B | B then A |", "|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(f"{multi[s][name]['top2_recall']:.3f} / {multi[s][name]['exact_top2']:.3f}"
                                         for s in ("A then B", "B then A")) + " |" for name in multi["A then B"]]
    if kind == "nli":
        lines += ["", "The NLI bundle is the test fixture, near chance on topics: these rows show the mechanics "
                      "of combining windows, not what a real NLI model would score."]
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
    parser.add_argument("what", choices=["long", "aggregation", "label-sets"])
    parser.add_argument("--bundle", type=Path, help="an embedding bundle (e.g. bundles/all-minilm-l6-v2)")
    parser.add_argument("--nli-bundle", type=Path, help="an NLI bundle (e.g. bundles/minilm)")
    parser.add_argument("--items", type=int, default=12, help="AG News items per long document")
    parser.add_argument("--docs", type=int, default=200, help="documents per set, embedding bundle")
    parser.add_argument("--nli-docs", type=int, default=100, help="documents per set, NLI bundle (a 512-token NLI "
                        "model needs --items 24 or more before a document spans two windows)")
    parser.add_argument("--texts", type=int, default=400, help="label-sets: AG News items")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, help=RESULTS_DIR_HELP.format("long-text"))
    args = parser.parse_args()
    {"long": run_long, "aggregation": run_aggregation, "label-sets": run_label_sets}[args.what](args)


if __name__ == "__main__":
    main()
