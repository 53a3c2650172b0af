import numpy as np

from zsl_onnx import LabelSpec
from zsl_onnx._postprocess import label_scores, ranked_result, softmax

ENC = LabelSpec(("entailment", "neutral", "contradiction"), entailment=0, contradiction=2)


def test_softmax_is_stable_for_huge_logits():
    out = softmax(np.array([1000.0, 999.0, -1000.0], dtype=np.float32))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.7310586, 0.2689414, 0.0], atol=1e-6)


def test_single_label_mode_softmaxes_entailment_across_labels():
    logits = np.array([[[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]]], dtype=np.float32)  # 1 text, 2 labels
    scores = label_scores(logits, ENC, multi_label=False)
    np.testing.assert_allclose(scores, softmax(np.array([[2.0, 0.0]])), rtol=1e-6)
    assert abs(float(scores.sum()) - 1.0) < 1e-6


def test_multi_label_mode_uses_entailment_vs_contradiction_only():
    logits = np.array([[[1.0, 100.0, 0.0], [0.0, -100.0, 1.0]]], dtype=np.float32)
    scores = label_scores(logits, ENC, multi_label=True)
    expected = 1 / (1 + np.exp(-1.0))  # neutral ignored
    np.testing.assert_allclose(scores, [[expected, 1 - expected]], rtol=1e-6)


def test_one_label_is_scored_like_multi_label():
    logits = np.array([[[3.0, 0.0, 1.0]]], dtype=np.float32)
    assert label_scores(logits, ENC, multi_label=False) == label_scores(logits, ENC, multi_label=True)


def test_ranked_result_sorts_descending_and_keeps_the_text():
    result = ranked_result("t", ["a", "b", "c"], np.array([0.2, 0.5, 0.3], dtype=np.float32))
    assert result["sequence"] == "t"
    assert result["labels"] == ["b", "c", "a"]
    assert result["scores"] == sorted(result["scores"], reverse=True)
    assert all(isinstance(s, float) for s in result["scores"])
