import numpy as np

from zsl_onnx._batching import make_batches
from zsl_onnx._tokenization import PairTokenizer
from tiny_tokenizers import wordpiece as wordpiece_tokenizer


def encodings(texts):
    tok = PairTokenizer(wordpiece_tokenizer(), max_length=64, pad_id=0)
    hypothesis = tok.encode_hypotheses(["music"])[0]
    return [tok.join(p, hypothesis) for p in tok.encode_premises(texts)]


def test_batches_are_sorted_by_length_and_padded_only_to_their_longest():
    texts = ["a man " * 10, "hi", "two dogs run " * 3, "ok", "the crowd sings"]
    encs = encodings(texts)
    batches = list(make_batches(encs, batch_size=2, pad_id=0))
    assert [len(b.positions) for b in batches] == [2, 2, 1]
    seen = np.concatenate([b.positions for b in batches])
    assert sorted(seen.tolist()) == list(range(len(texts)))
    widths = [b.input_ids.shape[1] for b in batches]
    assert widths == sorted(widths)
    for batch in batches:
        assert batch.input_ids.shape[1] == max(len(encs[i].ids) for i in batch.positions)
        for row, index in enumerate(batch.positions):
            n = len(encs[index].ids)
            assert batch.input_ids[row, :n].tolist() == encs[index].ids
            assert batch.attention_mask[row].sum() == n
            assert batch.token_type_ids[row, :n].tolist() == encs[index].type_ids


def test_padding_uses_the_given_pad_id():
    encs = encodings(["hi", "a man plays a guitar on stage"])
    (batch,) = make_batches(encs, batch_size=8, pad_id=77)
    short = batch.attention_mask[0] == 0
    assert short.any() and (batch.input_ids[0][short] == 77).all()


def test_token_cap_limits_padded_tokens_but_never_drops_a_long_pair():
    texts = ["hi", "ok", "the crowd sings", "two dogs run " * 3, "a man " * 10, "a man plays a guitar " * 8]
    encs = encodings(texts)
    lengths = sorted(len(e.ids) for e in encs)
    cap = 2 * lengths[2]  # room for two short pairs, less than one of the longest
    assert lengths[-1] > cap
    batches = list(make_batches(encs, batch_size=32, pad_id=0, max_tokens=cap))
    seen = np.concatenate([b.positions for b in batches])
    assert sorted(seen.tolist()) == list(range(len(texts)))
    for batch in batches:
        rows, width = batch.input_ids.shape
        assert rows * width <= cap or rows == 1
    assert batches[-1].input_ids.shape == (1, lengths[-1])
    # Without a cap the row limit alone applies.
    assert len(list(make_batches(encs, batch_size=32, pad_id=0))) == 1


def test_token_cap_takes_as_many_rows_as_fit():
    encs = encodings(["hi"] * 10)
    width = len(encs[0].ids)
    batches = list(make_batches(encs, batch_size=32, pad_id=0, max_tokens=4 * width + 1))
    assert [len(b.positions) for b in batches] == [4, 4, 2]
