import pytest

from zsl_onnx import BundleError, HypothesisTooLongError
from zsl_onnx._tokenization import PairTokenizer, resolve_max_length, resolve_pad_id
from tiny_tokenizers import wordpiece as wordpiece_tokenizer

PREMISE = "A man is playing a guitar on stage while the crowd sings along " * 3
HYPOTHESES = ["This example is music.", "This example is about football and sports."]


@pytest.fixture(scope="module")
def backend():
    return wordpiece_tokenizer()


@pytest.mark.parametrize("max_length", [24, 30, 64])
def test_pairs_match_encoding_the_pair_with_only_first(backend, max_length):
    tok = PairTokenizer(backend, max_length=max_length, pad_id=0)
    reference = PairTokenizer(backend, max_length=max_length, pad_id=0).backend
    premise = tok.encode_premises([PREMISE])[0]
    for hypothesis, encoded in zip(HYPOTHESES, tok.encode_hypotheses(HYPOTHESES)):
        joined = tok.join(premise, encoded)
        expected = reference.encode(PREMISE, hypothesis)
        assert joined.ids == expected.ids
        assert joined.type_ids == expected.type_ids
        assert len(joined.ids) <= max_length
        # the hypothesis is never cut
        assert joined.ids[-len(encoded.ids) - 1 : -1] == encoded.ids


def test_premise_encoding_is_reusable_across_labels(backend):
    tok = PairTokenizer(backend, max_length=24, pad_id=0)
    premise = tok.encode_premises([PREMISE])[0]
    before = list(premise.ids)
    short, long = tok.encode_hypotheses(["music", "This example is about football and sports."])
    tok.join(premise, long)
    assert premise.ids == before
    assert tok.join(premise, short).ids == tok.backend.encode(PREMISE, "music").ids


def test_baked_in_truncation_and_padding_are_reset(backend):
    baked = wordpiece_tokenizer()
    baked.enable_truncation(8)
    baked.enable_padding(length=100)
    tok = PairTokenizer(baked, max_length=64, pad_id=0)
    joined = tok.join(tok.encode_premises([PREMISE])[0], tok.encode_hypotheses(["music"])[0])
    assert len(joined.ids) == 64  # longer than the baked 8, not padded to 100
    assert baked.truncation["max_length"] == 8  # the caller's tokenizer is untouched


def test_hypothesis_that_leaves_no_room_is_named(backend):
    tok = PairTokenizer(backend, max_length=10, pad_id=0)
    # The fixed vocabulary splits it into this|ex|##amp|##le|is|mus|##ic|. : 8 tokens, 11 with specials.
    assert backend.encode("This example is music.", add_special_tokens=False).tokens == [
        "this", "ex", "##amp", "##le", "is", "mus", "##ic", "."]
    with pytest.raises(HypothesisTooLongError, match=r"'This example is music\.' takes 11 tokens with special tokens"):
        tok.encode_hypotheses(HYPOTHESES)
    long = "This example is about music, sports, politics, economy and science."
    with pytest.raises(HypothesisTooLongError, match=r"takes more than 10 tokens with special tokens"):
        tok.encode_hypotheses([long])


def test_max_length_resolution_order():
    assert resolve_max_length({"model_max_length": 256}, {"max_position_embeddings": 512}) == 256
    no_limit = {"model_max_length": int(1e30)}
    assert resolve_max_length(no_limit, {"max_position_embeddings": 512}) == 512
    roberta = {"max_position_embeddings": 514, "model_type": "xlm-roberta", "pad_token_id": 1}
    assert resolve_max_length({}, roberta) == 512
    with pytest.raises(BundleError, match="max_length"):
        resolve_max_length({}, {})


def test_pad_id_resolution(backend):
    assert resolve_pad_id(backend, {"pad_token": "[PAD]"}, {}) == backend.token_to_id("[PAD]")
    assert resolve_pad_id(backend, {"pad_token": {"content": "[SEP]"}}, {}) == backend.token_to_id("[SEP]")
    assert resolve_pad_id(backend, {}, {"pad_token_id": 7}) == 7
    with pytest.raises(BundleError, match="no pad token"):
        resolve_pad_id(backend, {}, {})


def test_max_length_never_exceeds_the_position_embeddings():
    from zsl_onnx._tokenization import model_positions, resolve_max_length

    bert = {"model_type": "bert", "max_position_embeddings": 512}
    roberta = {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    assert resolve_max_length({"model_max_length": 4096}, bert) == 512  # a tokenizer that claims too much
    assert resolve_max_length({"model_max_length": 128}, bert) == 128
    assert resolve_max_length({}, roberta) == 512 and model_positions(roberta) == 512
    assert model_positions({"max_position_embeddings": True}) is None
