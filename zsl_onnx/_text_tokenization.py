"""Embedding stage 2: single texts -> token ids, as sentence-transformers would make them.

sentence-transformers prepends a prompt (e5's "query: ") to the text, tokenizes the pair-less
sequence with special tokens and truncates it to the model's ``max_seq_length``. We do the
same with the model's tokenizer.json, after resetting whatever truncation or padding the file
has baked in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

from ._tokenization import load_tokenizer, resolve_pad_id, window_text

__all__ = ["TextTokenizer"]


class TextTokenizer:
    """Encodes single texts, each prefixed with ``prompt``, truncated to ``max_length``."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, pad_id: int) -> None:
        # Work on a copy: we reset its truncation and padding, and the caller's stays as it was.
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        self.max_length = max_length
        self.pad_id = pad_id
        self.specials = self._tokenizer.num_special_tokens_to_add(is_pair=False)
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
        max_length: int,
    ) -> TextTokenizer:
        tokenizer = load_tokenizer(tokenizer_json)
        return cls(tokenizer, max_length=max_length, pad_id=resolve_pad_id(tokenizer, tokenizer_config, config))

    @property
    def backend(self) -> Tokenizer:
        return self._tokenizer

    def encode(self, texts: Sequence[str], prompt: str = "") -> list[Encoding]:
        """Tokenize ``prompt + text`` for each text, with special tokens."""
        texts = [prompt + window_text(self.probe, text, self.max_length) for text in texts]
        return self._tokenizer.encode_batch(texts, add_special_tokens=True)

    def prompt_length(self, prompt: str) -> int:
        """Tokens the prompt covers at the start of an encoding, counting a leading special
        token (sentence-transformers' rule: the prompt's encoded length minus the final one)."""
        if not prompt:
            return 0
        return max(len(self._tokenizer.encode(prompt, add_special_tokens=True).ids) - 1, 0)
