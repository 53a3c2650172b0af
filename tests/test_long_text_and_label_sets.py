"""long_text="chunk" windows, the truncation warning and its counts, and one label set per text."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tiny_tokenizers import ROBERTA_SPECIALS, byte_level_bpe, unigram, wordpiece

from zsl_onnx import HypothesisTooLongError, InvalidInputError, TruncationWarning, ZeroShotClassifier
from zsl_onnx._windows import OVERLAP, split_windows

LABELS = ["sports", "politics", "economy"]
SENTENCE = "the match went to extra time and the crowd sang loudly , while stocks fell . "
LONG = SENTENCE * 40


@pytest.fixture(scope="module", params=["fp32", "int8"])
def clf(request, bert_bundle):
    return ZeroShotClassifier.from_pretrained(bert_bundle, variant=request.param)


def _windows(clf, texts, labels=LABELS, max_windows=None):
    scorer = clf.scorer
    hypotheses = [clf.hypothesis_template.format(label) for label in labels]
    longest = max(len(e.ids) for e in scorer.tokenizer.encode_hypotheses(hypotheses))
    budget = scorer.max_length - scorer.tokenizer.pair_specials - longest - 4
    return split_windows(scorer.tokenizer.probe, texts, budget, max_windows), budget


def test_each_window_is_scored_as_its_own_text_and_single_label_takes_the_mean(clf):
    windows, _ = _windows(clf, [LONG])
    assert len(windows.texts) > 2 and all(w in LONG for w in windows.texts)
    alone = clf.scores(windows.texts, LABELS)  # each window as an ordinary text
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # no window is cut
        chunked = clf.scores([LONG], LABELS, long_text="chunk", max_windows=None)
    np.testing.assert_allclose(chunked[0], alone.mean(axis=0), rtol=0, atol=1e-6)
    multi = clf.scores([LONG], LABELS, multi_label=True, long_text="chunk", max_windows=None)
    np.testing.assert_array_equal(multi[0], clf.scores(windows.texts, LABELS, multi_label=True).max(axis=0))


def test_windows_overlap_cover_the_text_and_end_at_word_boundaries(clf):
    windows, budget = _windows(clf, [LONG])
    probe = clf.scorer.tokenizer.probe
    assert windows.texts[0].startswith("the match") and LONG.rstrip().endswith(windows.texts[-1].rstrip())
    for first, second in zip(windows.texts, windows.texts[1:]):
        assert len(probe.encode(first, add_special_tokens=False).ids) <= budget
        overlap = first[-20:]
        assert overlap in second  # consecutive windows share text
        assert first.endswith(tuple("abcdefghijklmnopqrstuvwxyz,.")) and not first.endswith(" ")
    assert OVERLAP == 0.25 and windows.dropped == [0]


def test_a_text_that_fits_is_one_window_equal_to_truncate(clf):
    windows, budget = _windows(clf, [SENTENCE])
    assert windows.texts == [SENTENCE] and windows.dropped == [0]
    probe = clf.scorer.tokenizer.probe
    words = LONG.split(" ")
    fits = next(" ".join(words[:n]) for n in range(len(words), 0, -1)
                if len(probe.encode(" ".join(words[:n]), add_special_tokens=False).ids) <= budget)
    over = " ".join(words[: len(fits.split(" ")) + 1])
    assert _windows(clf, [fits])[0].texts == [fits]
    assert len(_windows(clf, [over])[0].texts) == 2
    assert np.array_equal(clf.scores([fits], LABELS, long_text="chunk"), clf.scores([fits], LABELS))


def test_max_windows_bounds_the_windows_and_warns_with_what_was_not_read(clf):
    windows, _ = _windows(clf, [LONG], max_windows=2)
    assert len(windows.texts) == 2 and windows.dropped[0] > 0
    with pytest.warns(TruncationWarning, match="1 of 1 texts did not fit") as caught:
        clf([LONG], LABELS, long_text="chunk", max_windows=2)
    assert caught[0].message.rows == (0,) and caught[0].message.dropped == (windows.dropped[0],)


def test_a_hypothesis_that_leaves_no_window_is_refused(clf):
    tokenizer = clf.scorer.tokenizer
    def room(n):  # tokens a window would get beside n repeats of "sports"
        hypothesis = clf.hypothesis_template.format(" ".join(["sports"] * n))
        return clf.max_length - tokenizer.pair_specials - len(tokenizer.backend.encode(hypothesis, add_special_tokens=False).ids) - 4
    label = " ".join(["sports"] * next(n for n in range(1, clf.max_length) if room(n) < 16))
    assert room(len(label.split())) > 0  # the hypothesis itself fits: only the window is too small
    with pytest.raises(HypothesisTooLongError, match="long_text='chunk' needs 16"):
        clf([LONG], [label], long_text="chunk")


@pytest.mark.parametrize(("long_text", "max_windows"), [("whole", 4), ("chunk", 0), ("chunk", 1.5), ("chunk", True)])
def test_bad_long_text_options_are_refused(clf, long_text, max_windows):
    with pytest.raises(InvalidInputError, match="long_text|max_windows"):
        clf("text", LABELS, long_text=long_text, max_windows=max_windows)


def test_truncation_warns_once_per_call_with_exact_counts(clf):
    probe = clf.scorer.tokenizer.probe
    hypothesis = clf.scorer.tokenizer.encode_hypotheses(["This example is sports."])[0]
    room = clf.max_length - clf.scorer.tokenizer.pair_specials - len(hypothesis.ids)
    texts = ["short one", SENTENCE * 8, SENTENCE * 9]
    with pytest.warns(TruncationWarning) as caught:
        clf(texts, ["sports"])
    assert len(caught) == 1 and caught[0].filename == __file__
    expected = [len(probe.encode(t, add_special_tokens=False).ids) - room for t in texts[1:]]
    assert caught[0].message.rows == (1, 2) and list(caught[0].message.dropped) == expected
    assert f"{sum(expected):,} tokens were not read" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        clf(["short one"], ["sports"])  # nothing cut, nothing said


def test_per_text_label_sets_equal_calls_for_each_text_alone(clf):
    texts = ["the match went to extra time", "stocks fell sharply", SENTENCE, "parliament voted"]
    sets = [["sports", "politics"], ["economy", "sports", "weather"], ["music"], ["politics", "law", "sports", "tax"]]
    for multi_label in (False, True):
        together = clf(texts, sets, multi_label=multi_label, batch_size=3)
        assert together == [clf(t, s, multi_label=multi_label) for t, s in zip(texts, sets)]  # bitwise, int8 too
        rows = clf.scores(texts, sets, multi_label=multi_label)
        assert [len(r) for r in rows] == [2, 3, 1, 4]


@pytest.mark.parametrize(("labels", "message"), [
    ([["a"], "b"], "mixes labels and label lists"),
    ([["a"]], "1 label lists for 2 texts"),
    ([["a"], []], r"candidate_labels\[1\] is empty"),
    ([["a"], ["b", "b"]], r"appears twice in candidate_labels\[1\]"),
    ([["a"], ["b", 3]], r"candidate_labels\[1\]\[1\] is int"),
])
def test_bad_label_sets_are_refused(clf, labels, message):
    with pytest.raises(InvalidInputError, match=message):
        clf(["one", "two"], labels)


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "byte-level"])
def test_windows_of_every_tokenizer_family_are_pieces_of_the_text(family):
    probe = {"wordpiece": wordpiece, "unigram": lambda: unigram(ROBERTA_SPECIALS), "byte-level": byte_level_bpe}[family]()
    windows = split_windows(probe, [LONG, "no-spaces-" * 300], 40, None)
    for index, window in zip(windows.owner, windows.texts):
        source = [LONG, "no-spaces-" * 300][index]
        assert window and window in source
        assert len(probe.encode(window, add_special_tokens=False).ids) <= 40 + 2
