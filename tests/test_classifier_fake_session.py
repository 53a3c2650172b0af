"""The classifier orchestrates; with a fake session we can check its bookkeeping exactly."""

from types import SimpleNamespace

import numpy as np
import pytest

from zsl_onnx import BundleError, InvalidInputError, LabelSpec, ZeroShotClassifier
from zsl_onnx._nli import NliScorer
from zsl_onnx._session import LogitsSession
from zsl_onnx._tokenization import PairTokenizer
from tiny_tokenizers import wordpiece as wordpiece_tokenizer

LABELS = LabelSpec(("entailment", "neutral", "contradiction"), entailment=0, contradiction=2)


class FakeSession:
    """Logits computed from the ids alone, so any row mix-up changes the answer."""

    def __init__(self, inputs=("input_ids", "attention_mask", "token_type_ids"), classes=3):
        self.inputs = inputs
        self.classes = classes
        self.feeds: list[dict] = []

    def get_inputs(self):
        return [SimpleNamespace(name=n, type="tensor(int64)") for n in self.inputs]

    def get_outputs(self):
        return [SimpleNamespace(name="extra"), SimpleNamespace(name="logits")]

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, names, feed):
        assert names == ["logits"]
        self.feeds.append(feed)
        ids = feed["input_ids"] * feed["attention_mask"]
        signature = (ids * np.arange(1, ids.shape[1] + 1)).sum(axis=1) % 97 / 10.0
        cols = [signature, -signature, np.zeros_like(signature)] + [signature] * (self.classes - 3)
        return [np.stack(cols[: self.classes], axis=1).astype(np.float32)]


BACKEND = wordpiece_tokenizer()


def make(session=None, max_length=64, max_batch_tokens=None):
    tokenizer = PairTokenizer(BACKEND, max_length=max_length, pad_id=0)
    return ZeroShotClassifier(NliScorer(tokenizer, LogitsSession(session or FakeSession()), LABELS),
                              max_batch_tokens=max_batch_tokens)


TEXTS = ["hi", "a man plays a guitar on stage " * 4, "two dogs", "the crowd sings along loudly"]
CANDIDATES = ["music", "sports", "a much longer label about politics", "economy"]


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_results_do_not_depend_on_batch_size(batch_size):
    reference = make().scores(TEXTS, CANDIDATES, batch_size=1000)
    np.testing.assert_array_equal(make().scores(TEXTS, CANDIDATES, batch_size=batch_size), reference)


@pytest.mark.parametrize("max_batch_tokens", [1, 40, 100, 10_000])
def test_token_cap_changes_batches_not_results(max_batch_tokens):
    reference = make().scores(TEXTS, CANDIDATES, batch_size=1000)
    session = FakeSession()
    got = make(session, max_batch_tokens=max_batch_tokens).scores(TEXTS, CANDIDATES, batch_size=1000)
    np.testing.assert_array_equal(got, reference)
    for feed in session.feeds:
        rows, width = feed["input_ids"].shape
        assert rows * width <= max_batch_tokens or rows == 1


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "512"])
def test_bad_token_cap_is_refused(bad):
    with pytest.raises(InvalidInputError, match="max_batch_tokens"):
        make(max_batch_tokens=bad)


def test_each_text_gets_its_own_scores_in_input_order():
    clf = make()
    together = clf.scores(TEXTS, CANDIDATES)
    for i, text in enumerate(TEXTS):
        np.testing.assert_array_equal(clf.scores(text, CANDIDATES)[0], together[i])


def test_feed_holds_exactly_the_declared_inputs():
    session = FakeSession(inputs=("input_ids", "attention_mask"))
    make(session)("hello", ["a", "b"])
    assert all(set(feed) == {"input_ids", "attention_mask"} for feed in session.feeds)


def test_micro_batches_are_padded_to_their_own_longest_pair():
    session = FakeSession()
    make(session)(TEXTS, CANDIDATES, batch_size=4)
    widths = [feed["input_ids"].shape[1] for feed in session.feeds]
    assert widths == sorted(widths) and widths[0] < widths[-1]


def test_result_shapes_follow_the_pipeline():
    clf = make()
    single = clf("hello there", "music, sports")
    assert set(single) == {"sequence", "labels", "scores"}
    batch = clf(["hello there"], ["music", "sports"])
    assert isinstance(batch, list) and batch[0]["labels"] == single["labels"]


def test_unknown_graph_input_is_refused_at_load():
    with pytest.raises(BundleError, match="'position_ids'"):
        LogitsSession(FakeSession(inputs=("input_ids", "position_ids")))


def test_logits_width_must_match_the_config():
    clf = make(FakeSession(classes=4))
    with pytest.raises(BundleError, match="returns 4 logits per pair but its config names 3"):
        clf("hello", ["a"])


def test_any_iterable_of_texts_and_labels_gives_the_list_results():
    clf = make()
    expected = clf(TEXTS, CANDIDATES)
    for texts, labels in [
        (tuple(TEXTS), (c for c in CANDIDATES)),
        ((t for t in TEXTS), np.array(CANDIDATES)),
        (np.array(TEXTS), iter(CANDIDATES)),
    ]:
        assert clf(texts, labels) == expected
    pd = pytest.importorskip("pandas")
    assert clf(pd.Series(TEXTS, index=range(10, 14)), pd.Series(CANDIDATES)) == expected
    assert isinstance(clf(np.str_(TEXTS[0]), CANDIDATES), dict)  # a single string stays single


def test_repr_names_what_a_user_needs_to_know():
    text = repr(make(max_length=48))
    assert text == (
        "ZeroShotClassifier(kind='nli', variant='fp32', providers=['CPUExecutionProvider'], "
        "labels=['entailment', 'neutral', 'contradiction'], max_length=48)"
    )


def test_pair_logits_takes_iterables_and_a_string_is_one_pair():
    clf = make()
    expected = clf.pair_logits(["a man plays", "two dogs"], ["music", "animals"])
    got = clf.pair_logits((t for t in ["a man plays", "two dogs"]), np.array(["music", "animals"]))
    np.testing.assert_array_equal(got, expected)
    one = clf.pair_logits("a man plays", "music")  # not split into characters
    assert one.shape == (1, 3)
    np.testing.assert_array_equal(one[0], expected[0])
