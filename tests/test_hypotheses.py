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
        ([], "empty list"),
        ("", r"sequences\[0\] is empty"),
        (["ok", "   "], r"sequences\[1\] is empty"),
        (["ok", 3], r"sequences\[1\] is int, not str"),
        (42, "not int"),
        ({"text": "a"}, "not dict"),
    ],
)
def test_bad_sequences(sequences, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_sequences(sequences)


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
