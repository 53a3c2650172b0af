"""Tiny random sentence-transformers models built in code (no downloads), for embedding tests.

Bodies: BERT (as all-MiniLM) and XLM-R (as multilingual-e5 and bge-m3's dense head), with
tokenizers built from a fixed vocabulary so every run gets the same ids. The directory is laid
out as sentence-transformers saves a model: the transformer at the top, modules.json,
1_Pooling/config.json, optional 2_Normalize, sentence_bert_config.json and
config_sentence_transformers.json (prompts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

WORDS = (
    "the a an of to in on and is was for with at by from it this that news article about example "
    "sports match game team goal won lost final season player coach politics government election "
    "vote minister party business market stocks profit company bank price science research study "
    "technology phone software computer internet health doctor hospital music film travel world "
    "query passage positive negative good bad great terrible man dog plays guitar runs park "
    "went extra time went scored twice minutes fell sharply after central raised rates"
).split()
FAMILIES = ("bert", "xlm-roberta")
HIDDEN = 32
MAX_SEQ_LENGTH = 48


def bert_tokenizer() -> object:
    """WordPiece over WORDS plus single letters (so unknown words still split), lowercasing."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,:!?'-/")
    pieces = specials + list(dict.fromkeys(WORDS)) + letters + ["##" + ch for ch in letters]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok


def xlmr_tokenizer() -> object:
    """Unigram over WORDS (with the metaspace prefix) plus single characters, like XLM-R's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders

    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0)]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:!?'-/▁")
    vocab = specials + [("▁" + w, -5.0) for w in dict.fromkeys(WORDS)] + [(ch, -10.0) for ch in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


def build_sentence_transformer(
    family: str,
    output: str | Path,
    *,
    pooling: str | Sequence[str] = "mean",
    normalize: bool = True,
    prompts: Mapping[str, str] | None = None,
    include_prompt: bool = True,
    seed: int = 0,
) -> Path:
    """Write a random-weight sentence-transformers model to ``output`` and return it."""
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    common = dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, initializer_range=0.2)
    if family == "bert":
        backend = bert_tokenizer()
        specials = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
        tokenizer = transformers.BertTokenizerFast(tokenizer_object=backend, model_max_length=128, **specials)
        config = transformers.BertConfig(vocab_size=backend.get_vocab_size(), max_position_embeddings=128, pad_token_id=0, **common)
        model_class = transformers.BertModel
    else:
        backend = xlmr_tokenizer()
        tokenizer = transformers.XLMRobertaTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
            unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=128,
        )
        config = transformers.XLMRobertaConfig(
            vocab_size=backend.get_vocab_size(), max_position_embeddings=130, type_vocab_size=1,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, **common,
        )
        model_class = transformers.XLMRobertaModel
    torch.manual_seed(seed)
    model_class(config).eval().save_pretrained(output)
    tokenizer.save_pretrained(output)
    _write_modules(output, pooling, normalize, prompts, include_prompt)
    return output


def _write_modules(
    output: Path, pooling: str | Sequence[str], normalize: bool, prompts: Mapping[str, str] | None, include_prompt: bool
) -> None:
    modes = [pooling] if isinstance(pooling, str) else list(pooling)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:  # like the published models: listed, with no folder of its own
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    _dump(output / "modules.json", modules)
    keys = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
            "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens", "weightedmean": "pooling_mode_weightedmean_tokens",
            "lasttoken": "pooling_mode_lasttoken"}
    config = {"word_embedding_dimension": HIDDEN, **{key: mode in modes for mode, key in keys.items()}, "include_prompt": include_prompt}
    (output / "1_Pooling").mkdir(exist_ok=True)
    _dump(output / "1_Pooling" / "config.json", config)
    _dump(output / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    st_config: dict[str, object] = {"__version__": {"sentence_transformers": "3.0.0"}}
    if prompts:
        st_config["prompts"] = dict(prompts)
    _dump(output / "config_sentence_transformers.json", st_config)


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
