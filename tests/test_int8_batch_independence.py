"""The default int8 variant scores a text the same, bit for bit, whatever it is batched with:
alone, in any order, with any batch size, token cap, --batch-size or --flush-every."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier

LABELS = ["music", "sports", "economy", "politics"]
TEXTS = [
    "The orchestra played Beethoven's ninth symphony last night.",
    "Stocks fell sharply after the central bank raised interest rates again, surprising analysts.",
    "Goal!",
    "The striker scored twice in the second half and the home team won the league title.",
    "Parliament passed the new budget with a narrow majority after a long and heated debate "
    "that lasted well into the night, while protesters gathered outside.",
    "Une chanson douce pour les enfants.",
    "Der Verein hat einen neuen Trainer.",
    "Inflation is eating into wages.",
    "He sings.",
    "A very long text about nothing in particular " * 6,
]


def assert_batch_independent(bundle: Path, texts: list[str], seed: int = 0) -> None:
    """Scores of each text alone equal its scores inside shuffled calls of any batch shape."""
    alone_clf = ZeroShotClassifier.from_pretrained(bundle, max_batch_tokens=None)
    assert alone_clf.variant == "int8"
    alone = np.stack([alone_clf.scores([text], LABELS)[0] for text in texts])
    rng = np.random.default_rng(seed)
    for max_batch_tokens in (None, 48, 512, "auto"):
        clf = ZeroShotClassifier.from_pretrained(bundle, max_batch_tokens=max_batch_tokens)
        for batch_size in (1, 3, 32):
            order = rng.permutation(len(texts))
            shuffled = clf.scores([texts[i] for i in order], LABELS, batch_size=batch_size)
            for row, index in enumerate(order):
                assert np.array_equal(shuffled[row], alone[index]), (
                    f"text {index} scored differently with batch_size={batch_size}, "
                    f"max_batch_tokens={max_batch_tokens}"
                )
    # multi-label scores each (text, label) pair on its own: any label order, same bits
    pairs = np.stack([alone_clf.scores([text], LABELS, multi_label=True)[0] for text in texts])
    reordered = alone_clf.scores(texts, LABELS[::-1], multi_label=True, batch_size=5)
    assert np.array_equal(reordered, pairs[:, ::-1])


def test_committed_tiny_bundle_int8_is_batch_independent(bert_bundle):
    """Runtime only (no torch): the committed bundle's int8 is per-row int8."""
    assert_batch_independent(bert_bundle, TEXTS, seed=2)


@pytest.mark.export
def test_tiny_model_int8_is_batch_independent(tiny_models):
    assert_batch_independent(tiny_models("bert").bundle, TEXTS)


@pytest.mark.export
@pytest.mark.slow
def test_fixture_int8_is_batch_independent(fixture_bundle):
    manifest = json.loads((fixture_bundle / "zsl_onnx.json").read_text())
    assert manifest["variants"]["int8"]["fidelity"]["batch_independent"] is True
    texts = TEXTS + [f"Headline {i}: markets, matches and melodies in the news today." * (1 + i % 3) for i in range(20)]
    assert_batch_independent(fixture_bundle, texts, seed=1)


@pytest.mark.export
def test_zsl_classify_gives_the_same_output_for_any_chunking(tiny_models, tmp_path):
    from zsl_onnx.classify.cli import main

    bundle = tiny_models("bert").bundle
    records = tmp_path / "in.jsonl"
    rng = np.random.default_rng(3)
    lines = [{"id": i, "text": " ".join(TEXTS[j] for j in rng.choice(len(TEXTS), size=1 + i % 3))} for i in range(60)]
    records.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    outputs = []
    for batch_size, flush_every in ((32, 256), (1, 1), (7, 13), (64, 5)):
        out = tmp_path / f"out-{batch_size}-{flush_every}.jsonl"
        argv = [str(bundle), str(records), "-o", str(out), "--labels", ",".join(LABELS),
                "--batch-size", str(batch_size), "--flush-every", str(flush_every), "--quiet"]
        assert main(argv) == 0
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs[1:])
    assert json.loads(outputs[0].splitlines()[0])["labels"]
