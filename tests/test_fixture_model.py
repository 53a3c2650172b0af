"""The trained SICK cross-encoder from ../shared: parity with the pipeline on real predictions."""

import csv

import numpy as np
import pytest

from conftest import FIXTURE_MODEL, SHARED
from test_parity import assert_same_results
from zsl_onnx import ZeroShotClassifier

pytestmark = [pytest.mark.export, pytest.mark.slow]


def sick_test_pairs(limit):
    path = SHARED / "data" / "sick" / "SICK.txt"
    with path.open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["SemEval_set"] == "TEST"]
    return rows[:limit]


def test_fixture_fp32_matches_the_pipeline(fixture_bundle):
    from transformers import pipeline

    pipe = pipeline("zero-shot-classification", model=str(FIXTURE_MODEL))
    clf = ZeroShotClassifier.from_pretrained(fixture_bundle, variant="fp32")
    rows = sick_test_pairs(40)
    texts = [r["sentence_A"] for r in rows[:20]]
    for kwargs in ({}, {"multi_label": True}):
        assert_same_results(pipe(texts, ["music", "animals", "sports"], **kwargs), clf(texts, ["music", "animals", "sports"], **kwargs), atol=1e-5)
    assert_same_results(pipe(texts[0], ["a man"]), clf(texts[0], ["a man"]), atol=1e-5)


def test_fixture_logits_and_nli_predictions_match_pytorch(fixture_bundle):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = sick_test_pairs(200)
    premises = [r["sentence_A"] for r in rows]
    hypotheses = [r["sentence_B"] for r in rows]
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE_MODEL)
    model = AutoModelForSequenceClassification.from_pretrained(FIXTURE_MODEL).eval()
    with torch.inference_mode():
        expected = model(**tokenizer(premises, hypotheses, padding=True, truncation="only_first", return_tensors="pt")).logits.numpy()
    got = ZeroShotClassifier.from_pretrained(fixture_bundle, variant="fp32").pair_logits(premises, hypotheses)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    gold = np.array([{"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}[r["entailment_label"]] for r in rows])
    assert (got.argmax(1) == gold).mean() > 0.75  # a trained model, not noise
