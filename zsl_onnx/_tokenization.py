"""Stage 2: (premise, hypothesis) pairs -> token ids, exactly as transformers would make them.

The pipeline truncates with ``only_first`` so the hypothesis is never cut. We reproduce that
with the model's own tokenizer.json, after resetting whatever truncation or padding the file
has baked in (many hub tokenizers carry a max_length of their training run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

from ._exceptions import BundleError, HypothesisTooLongError, mapped_errors

# A text of at most this many characters per token of the window is tokenized whole; a longer
# one only as far as the window can reach (see window_text).
WHOLE_CHARS_PER_TOKEN = 16
# transformers writes int(1e30) as model_max_length when a tokenizer declares no limit.
_NO_LIMIT = 1_000_000
# Families whose learned positions start after padding_idx (RoBERTa's offset of pad_id + 1).
_POSITION_OFFSET_FAMILIES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer"}


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizers.Tokenizer from a tokenizer.json, as our BundleError if it is unreadable."""
    with mapped_errors(f"Cannot read tokenizer file {path}", "Re-download or re-export the bundle."):
        return Tokenizer.from_file(str(path))


def window_text(probe: Tokenizer, text: str, tokens: int) -> str:
    """The start of ``text`` whose tokens begin with every token a ``tokens``-long window holds.

    Tokenizing a 50 MB text in full to keep its first few hundred tokens costs minutes and
    gigabytes; this costs about as much as the window. ``probe`` is the tokenizer without
    truncation. The prefix ends before an ASCII space, where every pre-tokenizer we load
    (WordPiece, Metaspace, byte-level BPE) splits words, so its tokens are the full text's first
    tokens; it is taken once it holds more than ``tokens`` of them. A text with no space in
    reach (CJK, base64) is cut where two prefixes, one twice the other, agree on the window.
    """
    size = WHOLE_CHARS_PER_TOKEN * tokens
    while size < len(text):
        space = text.find(" ", size, 2 * size)
        if space > 0 and not text[space - 1].isspace():
            prefix = text[:space]
            if len(probe.encode(prefix, add_special_tokens=False).ids) > tokens:
                return prefix
        else:
            prefix, longer = text[:size], text[: 2 * size]
            first = probe.encode(prefix, add_special_tokens=False).ids
            window = first[: tokens + 1]
            if len(first) > tokens and window == probe.encode(longer, add_special_tokens=False).ids[: tokens + 1]:
                return prefix
        size *= 2
    return text


def resolve_max_length(
    tokenizer_config: Mapping[str, Any], config: Mapping[str, Any]
) -> int:
    """The token budget of a pair: tokenizer_config's model_max_length, else config's positions
    (never more than the positions: a longer input would index past the position embeddings)."""
    positions = model_positions(config)
    declared = tokenizer_config.get("model_max_length")
    if isinstance(declared, (int, float)) and 0 < declared < _NO_LIMIT:
        return int(declared) if positions is None else min(int(declared), positions)
    if positions is None:
        raise BundleError(
            "Cannot tell the model's maximum input length: neither tokenizer_config.json "
            "(model_max_length) nor config.json (max_position_embeddings) gives it. "
            "Pass max_length= explicitly."
        )
    return positions


def model_positions(config: Mapping[str, Any]) -> int | None:
    """The most tokens the model's position embeddings allow, if config.json says."""
    positions = config.get("max_position_embeddings")
    if isinstance(positions, bool) or not isinstance(positions, int) or positions <= 0:
        return None
    if config.get("model_type") in _POSITION_OFFSET_FAMILIES:
        pad = config.get("pad_token_id", 1)
        positions -= (pad if isinstance(pad, int) and not isinstance(pad, bool) else 1) + 1
    return positions


def resolve_pad_id(
    tokenizer: Tokenizer, tokenizer_config: Mapping[str, Any], config: Mapping[str, Any]
) -> int:
    """The id used to pad a micro-batch. It matters: BART pools on eos, RoBERTa counts non-pad."""
    pad_token = tokenizer_config.get("pad_token")
    if isinstance(pad_token, dict):  # AddedToken serialised as a dict
        pad_token = pad_token.get("content")
    if isinstance(pad_token, str) and tokenizer.token_to_id(pad_token) is not None:
        return int(tokenizer.token_to_id(pad_token))
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    if isinstance(config.get("pad_token_id"), int):
        return int(config["pad_token_id"])
    raise BundleError(
        "The tokenizer has no pad token (tokenizer_config.json pad_token, tokenizer.json padding "
        "and config.json pad_token_id are all missing); add one to tokenizer_config.json."
    )


class PairTokenizer:
    """Encodes premise/hypothesis pairs with only_first truncation to ``max_length``."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, pad_id: int) -> None:
        # Work on a copy: we reset its truncation and padding, and the caller's stays as it was.
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length, strategy="only_first")
        self.max_length = max_length
        self.pad_id = pad_id
        self._pair_specials = self._tokenizer.num_special_tokens_to_add(is_pair=True)
        self.probe = Tokenizer.from_str(tokenizer.to_str())  # untruncated: window_text, long_text="chunk"
        self.probe.no_padding()
        self.probe.no_truncation()

    @classmethod
    def from_file(
        cls,
        tokenizer_json: str | Path,
        *,
        tokenizer_config: Mapping[str, Any],
        config: Mapping[str, Any],
        max_length: int | None = None,
    ) -> PairTokenizer:
        tokenizer = load_tokenizer(tokenizer_json)
        return cls(
            tokenizer,
            max_length=resolve_max_length(tokenizer_config, config) if max_length is None else max_length,
            pad_id=resolve_pad_id(tokenizer, tokenizer_config, config),
        )

    @property
    def pair_specials(self) -> int:
        """Special tokens a pair adds (BERT's [CLS] a [SEP] b [SEP]: 3)."""
        return self._pair_specials

    @property
    def backend(self) -> Tokenizer:
        """The underlying tokenizers.Tokenizer (truncation already reset to only_first)."""
        return self._tokenizer

    def encode_hypotheses(self, hypotheses: Sequence[str]) -> list[Encoding]:
        """Tokenize each hypothesis once; fail early on one that leaves the text no room."""
        encodings = self._tokenizer.encode_batch(list(hypotheses), add_special_tokens=False)
        for hypothesis, encoding in zip(hypotheses, encodings):
            needed = len(encoding.ids) + self._pair_specials
            if needed >= self.max_length:
                # At max_length the encoding was cut by truncation, so the true count is larger.
                count = f"more than {self.max_length}" if len(encoding.ids) >= self.max_length else needed
                raise HypothesisTooLongError(
                    f"The hypothesis {hypothesis!r} takes {count} tokens with special tokens, "
                    f"which leaves no room for the text within max_length={self.max_length}. "
                    "Shorten the label or the hypothesis template."
                )
        return encodings

    def encode_premises(self, premises: Sequence[str]) -> list[Encoding]:
        """Tokenize each text once, however many labels it will be paired with."""
        texts = [window_text(self.probe, text, self.max_length) for text in premises]
        return self._tokenizer.encode_batch(texts, add_special_tokens=False)

    def join(self, premise: Encoding, hypothesis: Encoding) -> Encoding:
        """Truncate the premise to fit and add special tokens; same ids as encoding the pair."""
        return self._tokenizer.post_process(premise, hypothesis, add_special_tokens=True)
