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


@pytest.mark.parametrize("family", FAMILIES)
def test_int8_stays_close_to_fp32(tiny_models, family):
    bundle = tiny_models(family).bundle
    fp32 = ZeroShotClassifier.from_pretrained(bundle, variant="fp32")
    int8 = ZeroShotClassifier.from_pretrained(bundle)
    assert int8.variant == "int8"
    texts = [c[0] for c in PARITY_CASES if isinstance(c[0], str)]
    diff = np.abs(int8.scores(texts, ["music", "sports", "economy"]) - fp32.scores(texts, ["music", "sports", "economy"]))
    assert diff.max() <= 0.02, f"int8 scores drift by {diff.max():.4f} from fp32"
    assert int8.fidelity["max_abs_logit_diff"] < 0.1
