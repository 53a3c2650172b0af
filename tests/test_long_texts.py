"""A text far longer than the model's window is tokenized only as far as the window reaches, with
exactly the tokens the whole text would give: bounded time and memory, the pipeline's results."""

from __future__ import annotations

import random
import resource
import time

import pytest
from tiny_tokenizers import ROBERTA_SPECIALS, byte_level_bpe, unigram, wordpiece
from tokenizers import Tokenizer

from zsl_onnx import ZeroShotClassifier
from zsl_onnx._text_tokenization import TextTokenizer
from zsl_onnx._tokenization import WHOLE_CHARS_PER_TOKEN, PairTokenizer, window_text

WORDS = "the match went to extra time and the crowd sang loudly , while stocks fell ! 42".split()
TOKENIZERS = {"wordpiece": wordpiece, "unigram": lambda: unigram(ROBERTA_SPECIALS), "byte-level": byte_level_bpe}


def _texts(length: int) -> dict[str, str]:
    rng = random.Random(7)
    words = " ".join(rng.choice(WORDS) for _ in range(length // 3))
    return {
        "words": words[:length],
        "whitespace runs": words.replace(" ", "  \n ")[:length],
        "no spaces": "".join(rng.choice("abcdefghij,.") for _ in range(length)),
        "one long word then spaces": "x" * (length // 2) + " " + words[: length // 2],
    }


@pytest.mark.parametrize("family", sorted(TOKENIZERS))
@pytest.mark.parametrize("tokens", [8, 64])
def test_the_window_prefix_has_the_whole_texts_first_tokens(family, tokens):
    probe: Tokenizer = TOKENIZERS[family]()
    for name, text in _texts(WHOLE_CHARS_PER_TOKEN * tokens * 9).items():
        prefix = window_text(probe, text, tokens)
        assert text.startswith(prefix), name
        whole = probe.encode(text, add_special_tokens=False).ids
        cut = probe.encode(prefix, add_special_tokens=False).ids
        assert cut[:tokens] == whole[:tokens], (family, name)
        if len(whole) > tokens and name != "one long word then spaces":
            assert len(prefix) < len(text), (family, name)  # it did cut


def test_short_texts_are_left_whole():
    probe = wordpiece()
    text = "word " * 100
    assert window_text(probe, text, 64) is text


@pytest.mark.parametrize("family", sorted(TOKENIZERS))
def test_pair_and_text_encodings_equal_those_of_the_whole_text(family):
    backend: Tokenizer = TOKENIZERS[family]()
    texts = list(_texts(20_000).values())
    pairs = PairTokenizer(backend, max_length=48, pad_id=0)
    whole = Tokenizer.from_str(backend.to_str())
    whole.no_truncation()
    hypothesis = pairs.encode_hypotheses(["this is sports ."])[0]
    for text, premise in zip(texts, pairs.encode_premises(texts)):
        full = whole.encode(text, add_special_tokens=False)
        expected = pairs.join(full, hypothesis).ids
        assert pairs.join(premise, hypothesis).ids == expected
    single = TextTokenizer(backend, max_length=48, pad_id=0)
    for text, encoding in zip(texts, single.encode(texts, "query: ")):
        reference = Tokenizer.from_str(backend.to_str())
        reference.no_padding()
        reference.enable_truncation(48)
        assert encoding.ids == reference.encode("query: " + text, add_special_tokens=True).ids


def test_a_50_mb_text_is_classified_in_bounded_time_and_memory(bert_bundle):
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant="fp32")
    rng = random.Random(0)
    text = " ".join(rng.choice(WORDS) for _ in range(11_000_000))[:50_000_000]
    head = text[:20_000]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = clf(text, ["sports", "politics"])
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 10 and grown_mb < 500  # was 80 s and 7.3 GB
    assert result["scores"] == clf(head, ["sports", "politics"])["scores"]  # the same window
