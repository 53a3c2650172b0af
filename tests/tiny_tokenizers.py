"""Tokenizers of each family's kind, built from FIXED vocabularies: the same ids on every run.

data/tiny_vocab.json holds a WordPiece vocabulary (BERT, ELECTRA), Unigram pieces with their
scores (XLM-R, DeBERTa-v2, and the sentencepiece model of DeBERTa-v3) and a byte-level BPE
vocabulary with its merges (BART). It was made once by ``python tests/tiny_tokenizers.py``,
which trains the three models on CORPUS; the trainers are not deterministic, so that command
gives a different (equally usable) file each time and the committed one is the reference.
Only the benchmarks' full-size replicas train at run time (``train_vocabularies``), where
ids do not matter and real text should give realistic sequence lengths.

Needs only ``tokenizers`` (runtime tests use it); ``sentencepiece_model`` needs the
``sentencepiece`` package of the [export] extra.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

VOCAB_FILE = Path(__file__).resolve().parent / "data" / "tiny_vocab.json"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
DEBERTA_SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")

CORPUS = (
    "A man is playing a guitar on stage while the crowd sings along.",
    "The striker scored twice in the final minutes of the match.",
    "Stocks fell sharply after the central bank raised interest rates again.",
    "Two dogs are running through a green field near the river.",
    "Nobody is riding the horse, and the stable is quiet tonight.",
    "This example is about music, sports, politics, economy, science or technology.",
    "I loved this film, the acting was wonderful and the ending surprised me!",
    "The city council met to discuss the new budget for roads and libraries.",
    "El gobierno anunció nuevas medidas económicas para reducir la inflación.",
    "La selección ganó el partido en el último minuto. Este ejemplo es deportes.",
    "Москва — столица России, крупнейший город страны.",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "الطقس اليوم مشمس وحار في معظم المناطق.",
    "Der Zug nach Berlin hat heute zwei Stunden Verspätung. 🚆😡",
) * 4


@dataclass(frozen=True)
class Vocabularies:
    """What a tokenizer model needs, special tokens excluded (each family adds its own first)."""

    wordpiece: tuple[str, ...]  # tokens in id order
    unigram: tuple[tuple[str, float], ...]  # (piece, log-probability)
    bpe: tuple[str, ...]  # byte-level tokens in id order
    merges: tuple[tuple[str, str], ...]  # in priority order

    def to_json(self) -> dict[str, Any]:
        return {
            "wordpiece": list(self.wordpiece),
            "unigram": [list(p) for p in self.unigram],
            "bpe": list(self.bpe),
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabularies:
        return cls(
            tuple(data["wordpiece"]),
            tuple((piece, float(score)) for piece, score in data["unigram"]),
            tuple(data["bpe"]),
            tuple((a, b) for a, b in data["merges"]),
        )


@cache
def fixed_vocabularies() -> Vocabularies:
    """The committed vocabularies (data/tiny_vocab.json)."""
    return Vocabularies.from_json(json.loads(VOCAB_FILE.read_text(encoding="utf-8")))


def wordpiece(vocab: Vocabularies | None = None) -> Tokenizer:
    """A BERT-style WordPiece tokenizer (lower-casing, [CLS] a [SEP] b [SEP])."""
    vocab = vocab or fixed_vocabularies()
    ids = {token: i for i, token in enumerate((*BERT_SPECIALS, *vocab.wordpiece))}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    _add_specials(tok, BERT_SPECIALS)
    return tok


def unigram(specials: Sequence[str], vocab: Vocabularies | None = None) -> Tokenizer:
    """A sentencepiece-style Unigram tokenizer; XLM-R passes ROBERTA_SPECIALS, DeBERTa-v2 DEBERTA_SPECIALS."""
    vocab = vocab or fixed_vocabularies()
    pieces = [(s, 0.0) for s in specials] + list(vocab.unigram)
    unk = "<unk>" if "<unk>" in specials else "[UNK]"
    tok = Tokenizer(models.Unigram(pieces, unk_id=list(specials).index(unk)))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    first, sep = ("<s>", "</s>") if "<s>" in specials else ("[CLS]", "[SEP]")
    pair = f"{first} $A {sep} {sep} $B {sep}" if first == "<s>" else f"{first} $A {sep} $B:1 {sep}:1"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {sep}", pair=pair,
        special_tokens=[(first, tok.token_to_id(first)), (sep, tok.token_to_id(sep))],
    )
    _add_specials(tok, specials)
    return tok


def byte_level_bpe(vocab: Vocabularies | None = None) -> Tokenizer:
    """A RoBERTa/BART-style byte-level BPE tokenizer (<s> a </s></s> b </s>)."""
    vocab = vocab or fixed_vocabularies()
    ids = {token: i for i, token in enumerate((*ROBERTA_SPECIALS, *vocab.bpe))}
    tok = Tokenizer(models.BPE(ids, list(vocab.merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", ids["</s>"]), ("<s>", ids["<s>"]))
    _add_specials(tok, ROBERTA_SPECIALS)
    return tok


def sentencepiece_model(vocab: Vocabularies | None = None) -> bytes:
    """A serialized sentencepiece Unigram model (DeBERTa-v3 ships only this) from the Unigram pieces."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    vocab = vocab or fixed_vocabularies()
    proto = spm_pb2.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = spm_pb2.TrainerSpec.UNIGRAM
    spec.vocab_size = len(DEBERTA_SPECIALS) + len(vocab.unigram)
    spec.pad_id, spec.bos_id, spec.eos_id, spec.unk_id = 0, 1, 2, 3
    spec.pad_piece, spec.bos_piece, spec.eos_piece, spec.unk_piece = "[PAD]", "[CLS]", "[SEP]", "[UNK]"
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    proto.normalizer_spec.escape_whitespaces = True
    kinds = {"[UNK]": spm_pb2.ModelProto.SentencePiece.UNKNOWN, "[MASK]": spm_pb2.ModelProto.SentencePiece.USER_DEFINED}
    for special in DEBERTA_SPECIALS:
        proto.pieces.add(piece=special, score=0.0, type=kinds.get(special, spm_pb2.ModelProto.SentencePiece.CONTROL))
    for piece, score in vocab.unigram:
        proto.pieces.add(piece=piece, score=score, type=spm_pb2.ModelProto.SentencePiece.NORMAL)
    return proto.SerializeToString()


def _add_specials(tok: Tokenizer, specials: Sequence[str]) -> None:
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])


def train_vocabularies(corpus: Sequence[str] = CORPUS, size: int = 400) -> Vocabularies:
    """Train the three models on ``corpus`` (not deterministic: ties between pieces fall either way)."""
    from tokenizers import trainers

    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=size, special_tokens=list(BERT_SPECIALS)))

    ug = Tokenizer(models.Unigram())
    ug.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    ug.pre_tokenizer = pre_tokenizers.Metaspace()
    ug.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=size, special_tokens=["[UNK]"], unk_token="[UNK]"))

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=max(size, 300), special_tokens=list(ROBERTA_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ))

    def in_id_order(tok: Tokenizer, skip: Sequence[str]) -> tuple[str, ...]:
        return tuple(t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]) if t not in skip)

    bpe_model = json.loads(bpe.to_str())["model"]
    return Vocabularies(
        wordpiece=in_id_order(wp, BERT_SPECIALS),
        unigram=tuple((p, s) for p, s in json.loads(ug.to_str())["model"]["vocab"] if p != "[UNK]"),
        bpe=in_id_order(bpe, ROBERTA_SPECIALS),
        merges=tuple(tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe_model["merges"]),
    )


if __name__ == "__main__":
    VOCAB_FILE.parent.mkdir(exist_ok=True)
    data = train_vocabularies().to_json()
    lines = ",\n".join(
        f"{json.dumps(key)}: [\n" + ",\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n]"
        for key, items in data.items()
    )
    VOCAB_FILE.write_text("{\n" + lines + "\n}\n", encoding="utf-8")  # one entry a line: readable diffs
    print(f"wrote {VOCAB_FILE}")
