"""Random-weight NLI models of every supported family, built offline from config alone.

Used by the test suite (tiny sizes, seconds to build) and the benchmarks (full-size replicas
for speed rows only: the weights are random, so their predictions mean nothing). Tiny models
get the fixed vocabularies of tiny_tokenizers.py, so the same ids on every run; replicas
train theirs on the real text they pass. Nothing is downloaded. Needs the [export] extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiny_tokenizers as tt

FAMILIES = ("bert", "electra", "xlm-roberta", "deberta-v2", "deberta-v3", "bart")
NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")

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
    vocab: int = 400  # tokenizer vocabulary when trained from a corpus (replicas)
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
    "deberta-v3-large": ("deberta-v3", Size(1024, 24, 16, 4096, 512, 8000, 128100, 0, 256)),
    # bge-m3 (and bge-m3-zeroshot-v2.0): xlm-roberta-large with 8194 position rows (8192 + 2)
    "xlm-roberta-large-8k": ("xlm-roberta", Size(1024, 24, 16, 4096, 8192, 8000, 250002)),
}


def build_model(
    family: str,
    output: str | Path,
    *,
    labels: Sequence[str] = NLI3,
    size: Size = TINY,
    seed: int = 0,
    corpus: Sequence[str] | None = None,
) -> Path:
    """Write a random-weight ``*ForSequenceClassification`` model and its tokenizer to ``output``.

    Without ``corpus`` the tokenizer uses the fixed vocabularies (deterministic ids). Replicas
    pass real text to train one, so that sequence lengths, which decide speed, are realistic.
    """
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    vocab = tt.fixed_vocabularies() if corpus is None else tt.train_vocabularies(corpus, size.vocab)
    tokenizer = _build_tokenizer(family, output, size, vocab)
    label_kwargs = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    config = _config(transformers, family, size, vocab=max(len(tokenizer), size.model_vocab), **label_kwargs)
    torch.manual_seed(seed)
    model_class = getattr(transformers, _MODEL_CLASSES[family])
    model = model_class(config).eval()
    with torch.no_grad():  # trained checkpoints have non-zero biases; all-zero ones export as shared constants
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.02)
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


def _build_tokenizer(family: str, output: Path, size: Size, vocab: tt.Vocabularies) -> Any:
    """Build a tokenizer of the family's kind and save it the way the real models ship it."""
    import transformers

    max_len = {"model_max_length": size.positions}
    if family in ("bert", "electra"):
        cls = transformers.BertTokenizerFast if family == "bert" else transformers.ElectraTokenizerFast
        tokenizer = cls(tokenizer_object=tt.wordpiece(vocab), **_bert_specials(), **max_len)
    elif family == "xlm-roberta":
        tokenizer = transformers.XLMRobertaTokenizerFast(
            tokenizer_object=tt.unigram(tt.ROBERTA_SPECIALS, vocab), bos_token="<s>", eos_token="</s>",
            sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **max_len,
        )
    elif family == "deberta-v2":
        tokenizer = transformers.DebertaV2TokenizerFast(
            tokenizer_object=tt.unigram(tt.DEBERTA_SPECIALS, vocab), bos_token="[CLS]", eos_token="[SEP]",
            **_bert_specials(), **max_len,
        )
    elif family == "deberta-v3":
        # Like microsoft/deberta-v3-*: only a sentencepiece model, no tokenizer.json. The
        # exporter must convert it, which is the path this family exists to test.
        spm_path = output / "spm.model"
        spm_path.write_bytes(tt.sentencepiece_model(vocab))
        slow = transformers.DebertaV2Tokenizer(vocab_file=str(spm_path), **max_len)
        slow.save_pretrained(output)
        return slow
    else:
        tokenizer = transformers.BartTokenizerFast(
            tokenizer_object=tt.byte_level_bpe(vocab), bos_token="<s>", eos_token="</s>", sep_token="</s>",
            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", **max_len,
        )
    tokenizer.save_pretrained(output)
    return tokenizer


def _bert_specials() -> dict[str, str]:
    return dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def write_calibration(path: str | Path, every: int = 7) -> Path:
    """Write every ``every``-th pair of the exporter's built-in calibration set as JSONL.

    The default gives 119 pairs (the exporter accepts 100 or more) from all eight languages:
    enough to exercise every guard step in a fraction of the time of the full 832.
    """
    import json

    from zsl_onnx_export.int8.calibration import builtin_calibration

    cal = builtin_calibration()
    path = Path(path)
    path.write_text(
        "".join(json.dumps({"premise": p, "hypothesis": h}, ensure_ascii=False) + "\n"
                for p, h in list(zip(cal.premises, cal.hypotheses))[::every]),
        encoding="utf-8",
    )
    return path
