"""Bad input on a real bundle, big inputs, and concurrent use from several threads."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from zsl_onnx import HypothesisTooLongError, InvalidInputError, ZeroShotClassifier, ZslOnnxError


@pytest.fixture(scope="module")
def clf(bert_bundle):
    return ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")


@pytest.mark.parametrize(
    ("sequences", "labels", "kwargs", "message"),
    [
        (None, ["a"], {}, "sequences is None"),
        ("", ["a"], {}, "empty"),
        ([], ["a"], {}, "sequences is empty"),
        (["ok", 5], ["a"], {}, r"sequences\[1\] is int"),
        ("text", None, {}, "candidate_labels is None"),
        ("text", [], {}, "empty"),
        ("text", ["a", "a"], {}, "appears twice"),
        ("text", ["a", ""], {}, "is empty"),
        ("text", ["a"], {"hypothesis_template": "No placeholder."}, "placeholder"),
        ("text", ["a"], {"batch_size": 0}, "batch_size"),
        ("text", ["a " * 500], {}, "leaves no room"),
    ],
)
def test_bad_input_gets_our_error_naming_the_problem(clf, sequences, labels, kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        clf(sequences, labels, **kwargs)
    assert isinstance(info.value, (ZslOnnxError, ValueError))


def test_too_long_hypothesis_has_its_own_class(clf):
    with pytest.raises(HypothesisTooLongError):
        clf("text", ["word " * 500])


def test_a_100k_character_text_is_truncated_not_refused(clf):
    huge = "The council met to discuss the budget. " * 2600
    assert len(huge) > 100_000
    result = clf(huge, ["politics", "sports"])
    assert result["sequence"] == huge and sum(result["scores"]) == pytest.approx(1.0, abs=1e-5)
    # only the first max_length tokens count: the tail cannot change the answer
    assert clf.scores(huge, ["politics", "sports"]) == pytest.approx(
        clf.scores(huge[:20_000], ["politics", "sports"]), abs=1e-6
    )


def test_a_thousand_labels_work(clf):
    labels = [f"topic number {i}" for i in range(1000)]
    scores = clf.scores("A man is playing a guitar.", labels, batch_size=64)
    assert scores.shape == (1, 1000) and scores.sum() == pytest.approx(1.0, abs=1e-4)
    multi = clf.scores("A man is playing a guitar.", labels, multi_label=True)
    assert ((multi > 0) & (multi < 1)).all()


def test_concurrent_calls_from_threads_match_sequential_ones(clf):
    texts = [f"Sentence number {i} talks about {'music' if i % 2 else 'football'}." for i in range(24)]
    labels = ["music", "sports", "politics"]
    expected = [clf.scores(t, labels) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda t: clf.scores(t, labels, batch_size=2), texts * 3))
    for i, scores in enumerate(got):
        np.testing.assert_allclose(scores, expected[i % len(texts)], atol=1e-6)


def test_pair_logits_checks_lengths(clf):
    logits = clf.pair_logits(["a man plays", "dogs run"], ["music", "animals"])
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    with pytest.raises(InvalidInputError, match="one hypothesis per premise"):
        clf.pair_logits(["a", "b"], ["c"])


def test_token_cap_defaults_to_the_cpu_value_and_can_be_lifted(bert_bundle):
    from zsl_onnx._classifier import CPU_MAX_BATCH_TOKENS

    assert ZeroShotClassifier.from_pretrained(bert_bundle).max_batch_tokens == CPU_MAX_BATCH_TOKENS
    # fp32: dynamic int8 scores shift slightly with batch composition (docs/zsl-classify.md), fp32 must not.
    lifted = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32", max_batch_tokens=None)
    assert lifted.max_batch_tokens is None
    capped = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32", max_batch_tokens=64)
    labels = ["music", "sports", "economy"]
    texts = ["A man is playing a guitar on stage.", "The striker scored twice.", "Stocks fell sharply."]
    np.testing.assert_allclose(capped.scores(texts, labels), lifted.scores(texts, labels), atol=1e-6)
