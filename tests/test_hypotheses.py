import numpy as np
import pytest

from zsl_onnx import InvalidInputError
from zsl_onnx._hypotheses import build_hypotheses, parse_labels, parse_sequences


def test_single_string_and_list():
    assert parse_sequences("a text") == (["a text"], True)
    assert parse_sequences(["a", "b"]) == (["a", "b"], False)
    assert parse_sequences(("a",)) == (["a"], False)


def test_caller_list_is_not_mutated():
    texts = ["a", "b"]
    parsed, _ = parse_sequences(texts)
    parsed.append("c")
    assert texts == ["a", "b"]


@pytest.mark.parametrize(
    ("sequences", "message"),
    [
        (None, "sequences is None"),
        ([], "sequences is empty"),
        ((t for t in ()), "sequences is empty"),
        ("", r"sequences\[0\] is empty"),
        (["ok", "   "], r"sequences\[1\] is empty"),
        (["ok", 3], r"sequences\[1\] is int, not str"),
        (42, "not int"),
        ({"text": "a"}, "is a dict, whose iteration gives its keys"),
        (b"a text", r"is bytes, not str: decode it first"),
        (bytearray(b"a text"), "is bytearray, not str"),
        ({"b", "a"}, "is a set, which has no order"),
        (np.array("a text"), "not ndarray"),  # 0-d: not iterable
        (np.array([["a", "b"]]), r"sequences\[0\] is ndarray, not str"),
        (np.array([1.5, 2.0]), r"sequences\[0\] is float64, not str"),
    ],
)
def test_bad_sequences(sequences, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_sequences(sequences)


@pytest.mark.parametrize(
    "make",
    [
        lambda texts: tuple(texts),
        lambda texts: (t for t in texts),
        lambda texts: iter(texts),
        lambda texts: map(str.strip, texts),
        lambda texts: np.array(texts),
        lambda texts: np.array(texts, dtype=object),
        lambda texts: dict.fromkeys(texts).keys(),
    ],
    ids=["tuple", "generator", "iterator", "map", "numpy", "numpy-object", "dict-keys"],
)
def test_any_iterable_of_strings_is_taken_in_order(make):
    texts = ["first text", "second text", "Москва"]
    parsed, single = parse_sequences(make(texts))
    assert parsed == texts and not single
    assert all(type(t) is str for t in parsed)  # numpy's str_ becomes plain str in results
    assert parse_labels(make(texts)) == texts


def test_a_numpy_string_scalar_is_a_single_text():
    assert parse_sequences(np.str_("one text")) == (["one text"], True)
    assert type(parse_sequences(np.str_("one text"))[0][0]) is str


def test_pandas_series_is_read_and_a_dataframe_refused():
    pd = pytest.importorskip("pandas")
    series = pd.Series(["b text", "a text"], index=[7, 3])
    assert parse_sequences(series) == (["b text", "a text"], False)  # positions, not the index
    assert parse_labels(pd.Series(["sports", "music"])) == ["sports", "music"]
    frame = pd.DataFrame({"text": ["a", "b"]})
    with pytest.raises(InvalidInputError, match=r"df\['text'\]"):
        parse_sequences(frame)
    with pytest.raises(InvalidInputError, match="column names"):
        parse_labels(frame)
    with pytest.raises(InvalidInputError, match=r"sequences\[1\] is float, not str"):
        parse_sequences(pd.Series(["a", float("nan")]))  # a missing value


def test_comma_separated_labels_are_split_like_the_pipeline():
    assert parse_labels("sports, politics ,, economy ") == ["sports", "politics", "economy"]
    assert parse_labels(["a, b"]) == ["a, b"]  # a list is taken as is


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (None, "candidate_labels is None"),
        ([], "empty"),
        ("", "empty"),
        (" , ", "empty"),
        (["sports", ""], r"candidate_labels\[1\] is empty"),
        (["sports", "sports"], "'sports' appears twice"),
        (["sports", None], r"candidate_labels\[1\] is NoneType"),
        (7, "not int"),
        (b"sports, music", "is bytes, not str: decode it first"),
        ({"sports": 1}, "is a dict, whose iteration gives its keys"),
        (frozenset({"sports"}), "is a frozenset, which has no order"),
        ((label for label in ["sports", 3]), r"candidate_labels\[1\] is int"),
    ],
)
def test_bad_labels(labels, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_labels(labels)


def test_hypotheses_from_template():
    assert build_hypotheses(["sports"], "Este ejemplo es {}.") == ["Este ejemplo es sports."]
    assert build_hypotheses(["a"], "About {0}") == ["About a"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("This example is sports.", "has no '{}' placeholder"),
        ("This example is {label}.", "cannot be formatted"),
        ("{} and {}", "cannot be formatted"),
        (None, "must be a string"),
    ],
)
def test_bad_templates(template, message):
    with pytest.raises(InvalidInputError, match=message):
        build_hypotheses(["sports"], template)


@pytest.mark.parametrize(
    "template",
    ["{{}}", "{:.0}", "{:>300000000}", "{!r}", "{0:}x{0}", "{label}"],
)
def test_templates_that_would_hide_or_bloat_the_label_are_refused(template):
    with pytest.raises(InvalidInputError, match="hypothesis_template"):
        build_hypotheses(["sports"], template)


def test_a_label_that_is_literally_braces_is_fine():
    assert build_hypotheses(["{}", "{{}}", "x"], "This example is {}.") == [
        "This example is {}.", "This example is {{}}.", "This example is x."
    ]
    assert build_hypotheses(["a"], "{0}") == ["a"]


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: parse_sequences(["fine", "bad \ud800 text"]), r"sequences\[1\]"),
        (lambda: parse_labels(["ok", "x\udfff"]), r"candidate_labels\[1\]"),
        (lambda: build_hypotheses(["a"], "This is {} \ud83d."), "hypothesis_template"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_index(call, where):
    with pytest.raises(InvalidInputError, match=where + ".*unpaired surrogate"):
        call()


def test_classifier_refuses_lone_surrogates_before_any_work(bert_bundle):
    from zsl_onnx import ZeroShotClassifier

    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    with pytest.raises(InvalidInputError, match=r"sequences\[2\] holds an unpaired surrogate"):
        clf(["one", "two", "three \udc80"], ["a", "b"])
    with pytest.raises(InvalidInputError, match="hypothesis_template"):
        clf("text", ["a", "b"], hypothesis_template="{:>300000000}")
