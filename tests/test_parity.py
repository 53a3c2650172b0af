"""zsl_onnx fp32 vs the real transformers pipeline, on every supported family."""

import numpy as np
import pytest

from zsl_onnx import ZeroShotClassifier
from zsl_onnx_export.testing import FAMILIES, NLI2, NLI3, PARITY_CASES

pytestmark = pytest.mark.export

ORDERS = (NLI3, ("contradiction", "neutral", "entailment"), ("neutral", "entailment", "contradiction"))
SPECS = [(f, ORDERS[i % 3]) for i, f in enumerate(FAMILIES)] + [(f, NLI2) for f in FAMILIES]
SPECS += [("bert", ("not_entailment", "entailment")), ("xlm-roberta", ("CONTRADICTION", "NEUTRAL", "ENTAILMENT"))]


def assert_same_results(expected, got, atol):
    expected = expected if isinstance(expected, list) else [expected]
    got = got if isinstance(got, list) else [got]
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert g["sequence"] == e["sequence"]
        assert g["labels"] == e["labels"]
        np.testing.assert_allclose(g["scores"], e["scores"], rtol=0, atol=atol)


@pytest.mark.parametrize(("family", "labels"), SPECS, ids=[f"{f}-{'/'.join(l)}" for f, l in SPECS])
def test_fp32_matches_transformers_pipeline(tiny_models, family, labels):
    from transformers import pipeline

    model = tiny_models(family, labels)
    pipe = pipeline("zero-shot-classification", model=str(model.source))
    clf = ZeroShotClassifier.from_pretrained(model.bundle, variant="fp32")
    for sequences, candidates, kwargs in PARITY_CASES:
        expected = pipe(sequences, candidates, **kwargs)
        got = clf(sequences, candidates, **kwargs)
        assert type(got) is type(expected)
        assert_same_results(expected, got, atol=1e-5)
