import numpy as np

from zsl_onnx._batching import make_batches
from zsl_onnx._tokenization import PairTokenizer
from zsl_onnx_export.testing import wordpiece_tokenizer


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
