"""The embedding path without torch: pooling, scoring, label cache and batch independence, driven
through the real classifier with a fake encoder session."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from zsl_onnx import BundleError, InvalidInputError, ZeroShotClassifier
from zsl_onnx._embedding import EmbeddingScorer, Prompts, embedding_settings
from zsl_onnx._encoder import EmbeddingSession
from zsl_onnx._pooling import PoolingConfig, modes_from_sentence_transformers, pool
from zsl_onnx._similarity import Scoring, similarity_scores
from zsl_onnx._text_tokenization import TextTokenizer

from embedding_models import bert_tokenizer

DIM = 8


class FakeEncoder:
    """Token vectors from each token id and position alone: no row can see another row."""

    def __init__(self) -> None:
        self.calls = 0
        table = np.random.default_rng(0).normal(size=(400, DIM)).astype(np.float32)
        self.table = table

    def get_inputs(self):
        return [SimpleNamespace(name=n, type="tensor(int64)") for n in ("input_ids", "attention_mask", "token_type_ids")]

    def get_outputs(self):
        return [SimpleNamespace(name="last_hidden_state")]

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, names, feed):
        assert names == ["last_hidden_state"]
        self.calls += 1
        ids = feed["input_ids"]
        positions = np.arange(ids.shape[1], dtype=np.float32)[None, :, None]
        return [self.table[ids % 400] * (1.0 + 0.01 * positions)]


BACKEND = bert_tokenizer()


def make(pooling=PoolingConfig(("mean",), normalize=True), prompts=Prompts(), cache_size=128, encoder=None,
         max_batch_tokens=None, label_encoder=None):
    tokenizer = TextTokenizer(BACKEND, max_length=32, pad_id=0)
    label_session = None if label_encoder is None else EmbeddingSession(label_encoder, pooling)
    scorer = EmbeddingScorer(
        tokenizer, EmbeddingSession(encoder or FakeEncoder(), pooling), label_session=label_session, prompts=prompts,
        cache_size=cache_size,
    )
    return ZeroShotClassifier(scorer, max_batch_tokens=max_batch_tokens)


TEXTS = ["the match went to extra time", "stocks fell sharply", "a man plays guitar in the park " * 3, "hi"]
LABELS = ["sports", "business", "music"]


def test_pipeline_shaped_results_and_kind():
    clf = make()
    assert clf.kind == "embedding"
    result = clf(TEXTS[0], LABELS)
    assert set(result) == {"sequence", "labels", "scores"}
    assert sorted(result["labels"]) == sorted(LABELS)
    assert result["scores"] == sorted(result["scores"], reverse=True)
    assert abs(sum(result["scores"]) - 1.0) < 1e-5
    assert isinstance(clf(TEXTS, LABELS), list)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
@pytest.mark.parametrize("max_batch_tokens", [None, 1, 40])
def test_a_text_does_not_depend_on_its_batch_mates(batch_size, max_batch_tokens):
    alone = np.stack([make().embed([text], batch_size=1)[0] for text in TEXTS])
    clf = make(max_batch_tokens=max_batch_tokens)
    np.testing.assert_allclose(clf.embed(TEXTS, batch_size=batch_size), alone, rtol=0, atol=1e-6)


def test_labels_are_encoded_once_per_label_set_and_cached():
    encoder = FakeEncoder()
    clf = make(encoder=encoder)
    scorer = clf.scorer
    first = clf.scores(TEXTS, LABELS)
    assert scorer.label_encodes == 1
    np.testing.assert_array_equal(clf.scores(TEXTS, LABELS), first)
    assert scorer.label_encodes == 1  # cache hit
    clf.scores(TEXTS, LABELS, hypothesis_template="A text about {}.")
    assert scorer.label_encodes == 2  # another template is another label set
    clf.scores(TEXTS, LABELS, multi_label=True)
    assert scorer.label_encodes == 2  # multi-label reuses the same vectors


def test_a_label_session_encodes_the_hypotheses_and_only_them():
    texts_encoder, label_encoder = FakeEncoder(), FakeEncoder()
    label_encoder.table = label_encoder.table[::-1].copy()  # another model: other vectors
    clf = make(encoder=texts_encoder, label_encoder=label_encoder)
    texts_only, labels_only = make(encoder=FakeEncoder()), make(encoder=label_encoder)
    hypotheses = [f"This example is {label}." for label in LABELS]
    expected = texts_only.embed(TEXTS) @ labels_only.embed(hypotheses).T  # both normalized: cosines
    label_calls = label_encoder.calls
    texts_calls = texts_encoder.calls
    np.testing.assert_allclose(clf.similarities(TEXTS, LABELS), expected, rtol=0, atol=1e-6)
    assert label_encoder.calls == label_calls + 1 and texts_encoder.calls == texts_calls + 1
    np.testing.assert_array_equal(clf.embed(TEXTS), texts_only.embed(TEXTS))  # embed() is the text model's


def test_label_cache_is_bounded():
    clf = make(cache_size=2)
    for labels in (["a1"], ["b1"], ["c1"], ["a1"]):
        clf.scores(TEXTS[:1], labels)
    assert clf.scorer.label_encodes == 4  # "a1" was evicted by "c1"
    assert len(clf.scorer._cache) == 2


def test_label_cache_is_safe_across_threads():
    clf = make()
    expected = clf.scores(TEXTS, LABELS)
    results, errors = [], []

    def work(i):
        try:
            labels = LABELS if i % 2 == 0 else LABELS[::-1]
            got = clf.scores(TEXTS, labels)
            results.append(got if i % 2 == 0 else got[:, ::-1])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cached_vectors_cannot_be_modified_by_a_caller():
    clf = make()
    vectors = clf.scorer.label_vectors(["sports"], batch_size=8)
    with pytest.raises(ValueError):
        vectors[0, 0] = 1.0


def test_similarities_are_raw_cosines_and_scores_follow_them():
    clf = make()
    cos = clf.similarities(TEXTS, LABELS)
    text = clf.embed(TEXTS)
    label = clf.scorer.label_vectors([f"This example is {x}." for x in LABELS], batch_size=8)
    expected = (text / np.linalg.norm(text, axis=1, keepdims=True)) @ (label / np.linalg.norm(label, axis=1, keepdims=True)).T
    np.testing.assert_allclose(cos, expected, atol=1e-5)
    assert np.all(np.argsort(clf.scores(TEXTS, LABELS), axis=1) == np.argsort(cos, axis=1))


def test_single_label_softmax_and_multi_label_sigmoid():
    cos = np.array([[0.5, 0.1, 0.3]], dtype=np.float32)
    scoring = Scoring(single_scale=10.0, multi_scale=20.0, multi_bias=0.3)
    single = similarity_scores(cos, scoring, multi_label=False)
    e = np.exp(10.0 * cos[0])
    np.testing.assert_allclose(single[0], e / e.sum(), rtol=1e-5)
    multi = similarity_scores(cos, scoring, multi_label=True)
    np.testing.assert_allclose(multi[0], 1 / (1 + np.exp(-20.0 * (cos[0] - 0.3))), rtol=1e-5)
    assert multi[0, 2] == pytest.approx(0.5)  # the bias is the cosine where a label is even odds
    one = similarity_scores(cos[:, :1], scoring, multi_label=False)
    assert one[0, 0] == pytest.approx(multi[0, 0])  # one candidate: the independent score, not 1.0


def test_prompt_is_prepended_and_masked_when_not_included():
    plain = make()
    with_prompt = make(prompts=Prompts(text="query: "))
    assert not np.allclose(plain.embed(["good news"]), with_prompt.embed(["good news"]))
    tokenizer = TextTokenizer(BACKEND, max_length=32, pad_id=0)
    assert tokenizer.prompt_length("query: ") == 3  # [CLS] query :
    excluded = make(PoolingConfig(("mean",), include_prompt=False), prompts=Prompts(text="query: "))
    ids = tokenizer.encode(["good news"], "query: ")[0].ids
    hidden = FakeEncoder().table[np.array(ids)] * (1.0 + 0.01 * np.arange(len(ids), dtype=np.float32))[:, None]
    np.testing.assert_allclose(excluded.embed(["good news"])[0], hidden[3:].mean(axis=0), rtol=1e-5)


def test_pooling_modes_against_hand_computed_values():
    hidden = np.array([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]], dtype=np.float32)  # last token is padding
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("mean",))), [[2.0, -1.0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("max",))), [[3.0, 2.0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("cls",))), [[1.0, 2.0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("lasttoken",))), [[3.0, -4.0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("weightedmean",))), [[7 / 3, -2.0]], rtol=1e-6)
    np.testing.assert_allclose(pool(hidden, mask, PoolingConfig(("mean_sqrt_len",))), [[4 / np.sqrt(2), -2 / np.sqrt(2)]], rtol=1e-6)
    both = pool(hidden, mask, PoolingConfig(("cls", "mean"), normalize=True))
    np.testing.assert_allclose(np.linalg.norm(both), 1.0, rtol=1e-6)
    np.testing.assert_allclose(hidden[0, 2], [100.0, 100.0])  # the caller's array is untouched


def test_pooling_modes_from_sentence_transformers_configs():
    assert modes_from_sentence_transformers({"pooling_mode_mean_tokens": True}) == ("mean",)
    assert modes_from_sentence_transformers({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}) == ("cls", "max")
    assert modes_from_sentence_transformers({"pooling_mode": "lasttoken"}) == ("lasttoken",)
    with pytest.raises(BundleError, match="Pooling modes"):
        PoolingConfig(("median",))


def test_embedding_only_methods_refuse_the_other_kind():
    clf = make()
    with pytest.raises(InvalidInputError, match="NLI bundle"):
        clf.pair_logits(["a"], ["b"])
    with pytest.raises(InvalidInputError, match="must be a zsl-onnx Scorer"):
        ZeroShotClassifier(object())


def test_malformed_embedding_manifest_is_a_bundle_error():
    with pytest.raises(BundleError, match="no 'embedding' entry"):
        embedding_settings({"kind": "embedding"})
    with pytest.raises(BundleError, match="scoring"):
        embedding_settings({"embedding": {"pooling": {"modes": ["mean"]}, "scoring": {"single_label": {}}}})
    with pytest.raises(BundleError, match="not a number"):
        Scoring(single_scale=float("nan"))


def test_unknown_bundle_kind_is_refused(tmp_path):
    from zsl_onnx._bundle import read_bundle

    (tmp_path / "config.json").write_text("{}")
    BACKEND.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "zsl_onnx.json").write_text(json.dumps(
        {"format": "zsl-onnx-bundle", "format_version": 1, "kind": "reranker", "variants": {"fp32": {"file": "m.onnx"}}}
    ))
    with pytest.raises(BundleError, match="'reranker' model"):
        read_bundle(tmp_path)


def test_embedding_manifest_is_checked_when_the_bundle_is_read():
    from zsl_onnx._manifest import check_manifest

    good = {"format": "zsl-onnx-bundle", "format_version": 2, "kind": "embedding", "variants": {"fp32": {"file": "m.onnx"}},
            "embedding": {"pooling": {"modes": ["mean"]}, "prompts": {"text": "", "label": ""},
                          "scoring": Scoring().to_json()}}
    check_manifest(good, {})
    with pytest.raises(BundleError, match="Pooling modes"):
        check_manifest({**good, "embedding": {**good["embedding"], "pooling": {"modes": ["median"]}}}, {})
    with pytest.raises(BundleError, match="prompts"):
        check_manifest({**good, "embedding": {**good["embedding"], "prompts": {"text": 3}}}, {})
    with pytest.raises(BundleError, match="format_version 4"):
        check_manifest({**good, "format_version": 4}, {})


LABEL_VARIANT_MANIFEST = {
    "format": "zsl-onnx-bundle", "format_version": 3, "kind": "embedding",
    "variants": {"fp32": {"file": "onnx/model.onnx"},
                 "int8": {"file": "onnx/model_quantized.onnx", "label_variant": "fp32"}},
    "embedding": {"pooling": {"modes": ["mean"]}, "prompts": {"text": "", "label": ""}, "scoring": Scoring().to_json()},
}


@pytest.mark.parametrize(("label_variant", "problem"), [
    ("fp16", "must name another variant"), ("int8", "must name another variant"), (3, "must name another variant"),
])
def test_a_label_variant_must_name_another_variant_of_the_bundle(label_variant, problem):
    from zsl_onnx._manifest import check_manifest

    check_manifest(LABEL_VARIANT_MANIFEST, {})
    variants = {**LABEL_VARIANT_MANIFEST["variants"]}
    variants["int8"] = {**variants["int8"], "label_variant": label_variant}
    with pytest.raises(BundleError, match=problem):
        check_manifest({**LABEL_VARIANT_MANIFEST, "variants": variants}, {})
    variants = {**LABEL_VARIANT_MANIFEST["variants"], "fp32": {"file": "onnx/model.onnx", "label_variant": "int8"}}
    with pytest.raises(BundleError, match="has a label_variant of its own"):
        check_manifest({**LABEL_VARIANT_MANIFEST, "variants": variants}, {})


def test_hub_fetch_of_a_variant_includes_its_label_variant(tmp_path):
    from zsl_onnx._bundle import _files_to_fetch

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "zsl_onnx.json").write_text(json.dumps(LABEL_VARIANT_MANIFEST))
    assert _files_to_fetch(tmp_path, None, None, False, "org/model") == ["onnx/model_quantized.onnx", "onnx/model.onnx"]
    assert _files_to_fetch(tmp_path, None, "fp32", False, "org/model") == ["onnx/model.onnx"]


def test_a_label_model_of_another_width_is_a_bundle_error():
    class WideEncoder(FakeEncoder):
        def run(self, names, feed):
            (hidden,) = super().run(names, feed)
            return [np.concatenate([hidden, hidden], axis=-1)]

    clf = make(label_encoder=WideEncoder())
    with pytest.raises(BundleError, match="label_variant names a file of another model"):
        clf.similarities(TEXTS, LABELS)


def test_a_missing_label_model_file_is_a_bundle_error_even_without_verify(tmp_path):
    from zsl_onnx._bundle import read_bundle
    from zsl_onnx._embedding import load_embedding_scorer

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    BACKEND.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "zsl_onnx.json").write_text(json.dumps(LABEL_VARIANT_MANIFEST))
    bundle = read_bundle(tmp_path)
    label = bundle.label_file(bundle.variants["int8"])
    assert label is not None and label.name == "fp32"
    with pytest.raises(BundleError, match="missing: this variant encodes label hypotheses with it"):
        load_embedding_scorer(bundle, tmp_path / "onnx" / "model_quantized.onnx", label_model_path=label.path,
                              max_length=None, providers=None, threads=None, session_options=None)


def test_a_manifest_without_label_variant_encodes_labels_with_the_variant_itself(tmp_path):
    from zsl_onnx._bundle import read_bundle

    manifest = {**LABEL_VARIANT_MANIFEST, "format_version": 2,
                "variants": {"fp32": {"file": "onnx/model.onnx"}, "int8": {"file": "onnx/model_quantized.onnx"}}}
    (tmp_path / "config.json").write_text("{}")
    BACKEND.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "zsl_onnx.json").write_text(json.dumps(manifest))
    bundle = read_bundle(tmp_path)
    assert bundle.label_file(bundle.variants["int8"]) is None  # one session, as format 2 bundles run


def test_repr_works_for_an_embedding_classifier():
    assert repr(make()) == (
        "ZeroShotClassifier(kind='embedding', variant='fp32', providers=['CPUExecutionProvider'], max_length=32)"
    )


def test_embedding_chunk_pools_window_vectors_single_label_and_takes_the_max_multi_label():
    from zsl_onnx._windows import split_windows

    clf = make()
    long = "a man plays guitar in the park and the crowd sings along loudly " * 12
    budget = clf.max_length - clf.scorer.tokenizer.specials - 4
    windows = split_windows(clf.scorer.tokenizer.probe, [long], budget, None)
    assert len(windows.texts) > 2
    vectors = clf.embed(windows.texts)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    pooled = unit.mean(axis=0, keepdims=True)
    labels = clf.scorer.label_vectors([f"This example is {x}." for x in LABELS], batch_size=8)
    from zsl_onnx._similarity import cosine_matrix, similarity_scores

    expected = similarity_scores(cosine_matrix(pooled, labels), clf.scorer.scoring, multi_label=False)
    np.testing.assert_allclose(clf.scores([long], LABELS, long_text="chunk", max_windows=None), expected, atol=1e-6)
    # multi-label: each window scored as a text, the highest score per label
    multi = clf.scores([long], LABELS, multi_label=True, long_text="chunk", max_windows=None)
    np.testing.assert_allclose(multi[0], clf.scores(windows.texts, LABELS, multi_label=True).max(axis=0), atol=1e-6)
    short = TEXTS[:2]
    np.testing.assert_array_equal(clf.scores(short, LABELS, long_text="chunk"), clf.scores(short, LABELS))


def test_embedding_label_sets_per_text_equal_calls_alone_and_share_the_cache():
    clf = make()
    sets = [LABELS, ["weather", "music"], LABELS, ["cooking"]]
    together = clf.scores(TEXTS, sets)
    for text, labels, row in zip(TEXTS, sets, together):
        np.testing.assert_allclose(row, clf.scores([text], labels)[0], rtol=0, atol=1e-6)
    assert clf.scorer.label_encodes == 3  # three distinct label sets, each encoded once
