import pytest

from zsl_onnx import LabelSpec, NoEntailmentLabelError
from zsl_onnx._labels import resolve_labels


def config(*names: str) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


@pytest.mark.parametrize(
    ("names", "entailment", "contradiction"),
    [
        (("entailment", "neutral", "contradiction"), 0, 2),
        (("contradiction", "neutral", "entailment"), 2, 0),  # facebook/bart-large-mnli
        (("neutral", "entailment", "contradiction"), 1, 0),  # the pipeline's rule: index 0, not the name
        (("CONTRADICTION", "NEUTRAL", "ENTAILMENT"), 2, 0),  # roberta-large-mnli spelling
        (("entailment", "not_entailment"), 0, 1),
        (("not_entailment", "entailment"), 1, 0),
    ],
)
def test_entailment_and_contradiction_follow_the_pipeline(names, entailment, contradiction):
    spec = resolve_labels(config(*names))
    assert (spec.entailment, spec.contradiction) == (entailment, contradiction)
    assert spec.names == names


def test_id2label_alone_is_enough():
    spec = resolve_labels({"id2label": {"0": "contradiction", "1": "entailment"}})
    assert spec == LabelSpec(("contradiction", "entailment"), entailment=1, contradiction=0)


def test_model_without_entailment_label_fails_naming_its_labels():
    with pytest.raises(NoEntailmentLabelError, match=r"\['positive', 'negative'\]"):
        resolve_labels(config("positive", "negative"))


def test_default_label_names_are_refused():
    with pytest.raises(NoEntailmentLabelError, match="LABEL_0"):
        resolve_labels(config("LABEL_0", "LABEL_1", "LABEL_2"))


def test_json_round_trip():
    spec = resolve_labels(config("entailment", "neutral", "contradiction"))
    assert LabelSpec.from_json(spec.to_json()) == spec
