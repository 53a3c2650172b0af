"""zsl_onnx fp32 vs the real transformers pipeline, on every supported family."""

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier
from tiny_models import FAMILIES, NLI2, NLI3, PARITY_CASES

pytestmark = pytest.mark.export

ORDERS = (NLI3, ("contradiction", "neutral", "entailment"), ("neutral", "entailment", "contradiction"))
SPECS = [(f, ORDERS[i % 3]) for i, f in enumerate(FAMILIES)] + [(f, NLI2) for f in FAMILIES]
SPECS += [("bert", ("not_entailment", "entailment")), ("xlm-roberta", ("CONTRADICTION", "NEUTRAL", "ENTAILMENT"))]


def assert_same_results(expected, got, atol):
    """Same texts, same score per label within ``atol``, and the same label order.

    Two labels whose scores are within ``atol`` of each other are a float32 tie: PyTorch and
    ONNX Runtime round differently, so such a pair may come out in either order, and only the
    ranking (scores descending) is checked for it. Every other pair must keep its order.
    """
    expected = expected if isinstance(expected, list) else [expected]
    got = got if isinstance(got, list) else [got]
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert g["sequence"] == e["sequence"]
        assert sorted(g["labels"]) == sorted(e["labels"])
        by_label = dict(zip(g["labels"], g["scores"]))
        np.testing.assert_allclose([by_label[label] for label in e["labels"]], e["scores"], rtol=0, atol=atol)
        assert g["scores"] == sorted(g["scores"], reverse=True)
        if np.all(-np.diff(e["scores"]) > 2 * atol):
            assert g["labels"] == e["labels"]


@pytest.mark.parametrize(("family", "labels"), SPECS, ids=[f"{f}-{'/'.join(l)}" for f, l in SPECS])
def test_fp32_matches_transformers_pipeline(tiny_models, family, labels):
    from transformers import pipeline

    model = tiny_models(family, labels, int8=False)
    pipe = pipeline("zero-shot-classification", model=str(model.source))
    clf = ZeroShotClassifier.from_pretrained(model.bundle, variant="fp32")
    for sequences, candidates, kwargs in PARITY_CASES:
        expected = pipe(sequences, candidates, **kwargs)
        got = clf(sequences, candidates, **kwargs)
        assert type(got) is type(expected)
        assert_same_results(expected, got, atol=1e-5)
