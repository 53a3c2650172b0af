"""Random-weight NLI models of every supported family, built offline from config alone.

Used by the test suite (tiny sizes, seconds to build) and the benchmarks (full-size replicas
for speed rows only: the weights are random, so their predictions mean nothing). Tokenizers
are trained here on a small multilingual corpus, so nothing is downloaded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES = ("bert", "electra", "xlm-roberta", "deberta-v2", "deberta-v3", "bart")
NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")

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


_LONG_TEXT = "The council debated the budget for roads, schools and the new library branch. " * 30
# (sequences, candidate_labels, kwargs) calls on which zsl_onnx must match the pipeline: single
# and multi-label, one label, a comma string with a Spanish template, long and non-Latin texts.
PARITY_CASES: tuple[tuple[Any, Any, dict[str, Any]], ...] = (
    ("A man is playing a guitar on stage.", ["music", "sports", "economy"], {}),
    (["A man is playing a guitar.", "Stocks fell sharply.", _LONG_TEXT], ["music", "sports", "economy"], {"multi_label": True}),
    (["Two dogs are running.", _LONG_TEXT], ["animals"], {}),
    ("La selección ganó el partido.", "deportes, política , economía", {"hypothesis_template": "Este ejemplo es {}."}),
    (["Москва — столица России.", "東京は日本の首都です。"], ["geography", "music"], {}),
)


@dataclass(frozen=True)
class Size:
    """Model dimensions; TINY for tests, the named REPLICAS for speed benchmarks."""

    hidden: int = 32
    layers: int = 2
    heads: int = 2
    intermediate: int = 64
    positions: int = 128
    vocab: int = 400  # tokenizer vocabulary trained from the corpus
    model_vocab: int = 0  # embedding rows, when larger than the tokenizer (the real model's vocab)
    embedding: int = 0  # ELECTRA embedding size (0: half the hidden size)
    position_buckets: int = 64  # DeBERTa relative-position buckets


TINY = Size()

# Full-size replicas of the seed architectures, dimensions copied from the real configs
# (vocab = the real embedding rows). Random weights: for speed and memory rows only.
REPLICAS: dict[str, tuple[str, Size]] = {
    "deberta-v3-base": ("deberta-v3", Size(768, 12, 12, 3072, 512, 8000, 128100, 0, 256)),
    "selectra-medium": ("electra", Size(384, 12, 6, 1536, 512, 8000, 50000, 384)),
    "xlm-roberta-large": ("xlm-roberta", Size(1024, 24, 16, 4096, 512, 8000, 250002)),
    "bart-large": ("bart", Size(1024, 12, 16, 4096, 1024, 8000, 50265)),
}


def build_model(
    family: str,
    output: str | Path,
    *,
    labels: Sequence[str] = NLI3,
    size: Size = TINY,
    seed: int = 0,
    corpus: Sequence[str] = CORPUS,
) -> Path:
    """Write a random-weight ``*ForSequenceClassification`` model and its tokenizer to ``output``.

    The tokenizer is trained on ``corpus``; replicas pass real text so that sequence lengths,
    which decide speed, are close to a real tokenizer's.
    """
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(family, output, size, corpus)
    label_kwargs = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    config = _config(transformers, family, size, vocab=max(len(tokenizer), size.model_vocab), **label_kwargs)
    torch.manual_seed(seed)
    model_class = getattr(transformers, _MODEL_CLASSES[family])
    model = model_class(config).eval()
    model.save_pretrained(output)
    return output


_MODEL_CLASSES = {
    "bert": "BertForSequenceClassification",
    "electra": "ElectraForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "deberta-v2": "DebertaV2ForSequenceClassification",
    "deberta-v3": "DebertaV2ForSequenceClassification",
    "bart": "BartForSequenceClassification",
}


def _config(transformers: Any, family: str, size: Size, *, vocab: int, **labels: Any) -> Any:
    common = dict(
        vocab_size=vocab,
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        initializer_range=0.1,  # wider than 0.02 so random logits differ between labels
        **labels,
    )
    if family == "bert":
        return transformers.BertConfig(max_position_embeddings=size.positions, pad_token_id=0, **common)
    if family == "electra":
        return transformers.ElectraConfig(
            embedding_size=size.embedding or max(size.hidden // 2, 16), max_position_embeddings=size.positions, pad_token_id=0, **common
        )
    if family == "xlm-roberta":
        return transformers.XLMRobertaConfig(
            max_position_embeddings=size.positions + 2, type_vocab_size=1,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, **common,
        )
    if family in ("deberta-v2", "deberta-v3"):
        extra = (
            dict(conv_kernel_size=3, conv_act="gelu", norm_rel_ebd="layer_norm", position_buckets=size.position_buckets)
            if family == "deberta-v2"
            else dict(norm_rel_ebd="layer_norm", position_buckets=size.position_buckets, share_att_key=True)
        )
        return transformers.DebertaV2Config(
            max_position_embeddings=size.positions, type_vocab_size=0, relative_attention=True,
            position_biased_input=False, pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
            pad_token_id=0, **extra, **common,
        )
    return transformers.BartConfig(
        vocab_size=vocab, d_model=size.hidden, encoder_layers=size.layers, decoder_layers=size.layers,
        encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.intermediate, decoder_ffn_dim=size.intermediate,
        max_position_embeddings=size.positions, init_std=0.1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        **labels,
    )


def _build_tokenizer(family: str, output: Path, size: Size, corpus: Sequence[str]) -> Any:
    """Train a tokenizer of the family's kind and save it the way the real models ship it."""
    import transformers

    max_len = {"model_max_length": size.positions}
    if family in ("bert", "electra"):
        backend = wordpiece_tokenizer(size.vocab, corpus)
        cls = transformers.BertTokenizerFast if family == "bert" else transformers.ElectraTokenizerFast
        tokenizer = cls(tokenizer_object=backend, **_bert_specials(), **max_len)
    elif family == "xlm-roberta":
        backend = _unigram(size.vocab, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>", corpus, roberta=True)
        tokenizer = transformers.XLMRobertaTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **max_len,
        )
    elif family == "deberta-v2":
        backend = _unigram(size.vocab, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]", corpus, roberta=False)
        tokenizer = transformers.DebertaV2TokenizerFast(
            tokenizer_object=backend, bos_token="[CLS]", eos_token="[SEP]", **_bert_specials(), **max_len
        )
    elif family == "deberta-v3":
        # Like microsoft/deberta-v3-*: only a sentencepiece model, no tokenizer.json. The
        # exporter must convert it, which is the path this family exists to test.
        spm_path = output / "spm.model"
        spm_path.write_bytes(_sentencepiece_model(size.vocab, corpus))
        slow = transformers.DebertaV2Tokenizer(vocab_file=str(spm_path), **max_len)
        slow.save_pretrained(output)
        return slow
    else:
        backend = _byte_level_bpe(size.vocab, corpus)
        tokenizer = transformers.BartTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **max_len,
        )
    tokenizer.save_pretrained(output)
    return tokenizer


def _bert_specials() -> dict[str, str]:
    return dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def wordpiece_tokenizer(vocab: int = TINY.vocab, corpus: Sequence[str] = CORPUS) -> Any:
    """A BERT-style WordPiece ``tokenizers.Tokenizer`` trained on CORPUS (needs no torch)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok


def _unigram(vocab: int, specials: list[str], unk: str, corpus: Sequence[str], *, roberta: bool) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        corpus, trainers.UnigramTrainer(vocab_size=vocab, special_tokens=specials, unk_token=unk)
    )
    if roberta:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
        )
    return tok


def _byte_level_bpe(vocab: int, corpus: Sequence[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=max(vocab, 300), special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return tok


def _sentencepiece_model(vocab: int, corpus: Sequence[str]) -> bytes:
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buffer, vocab_size=vocab, model_type="unigram",
        hard_vocab_limit=False, character_coverage=1.0,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
        user_defined_symbols=["[MASK]"], minloglevel=2,
    )
    return buffer.getvalue()
