"""Long texts as overlapping windows of words (``long_text="chunk"``), and how windows combine.

A window is a piece of the text itself, cut at word boundaries, of at most ``budget`` tokens,
so scoring it is scoring that piece as an ordinary text: each window's scores equal the
pipeline's for the window's text. Consecutive windows overlap by a quarter of the budget, so
a sentence cut at one window's end is read whole at the next one's start. ``max_windows``
bounds the cost of one text; what lies past the last window is counted as dropped, and the
call warns as truncation does.

How windows combine (measured in benchmarks/bench_long_text.py, docs/long-texts.md):
single-label scores are the mean of the windows' score rows (each sums to 1, so the mean
does too); multi-label scores are the maximum over windows (a label holds for the text when
it holds anywhere in it); embedding models pool the windows' vectors instead (their mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from ._tokenization import window_text

__all__ = ["OVERLAP", "Windows", "combine_rows", "split_windows"]

OVERLAP = 0.25  # of the window budget, shared by consecutive windows


@dataclass(frozen=True)
class Windows:
    """The windows of a call's texts, flattened: ``texts[k]`` is a window of text ``owner[k]``."""

    texts: list[str]
    owner: np.ndarray  # int64 [windows]
    dropped: list[int]  # per original text: tokens past its last window (0 when all were read)

    def rows_of(self, n_texts: int) -> list[np.ndarray]:
        """For each original text, the indices of its windows."""
        order = np.argsort(self.owner, kind="stable")
        ends = np.cumsum(np.bincount(self.owner, minlength=n_texts))
        return np.split(order, ends[:-1])


def split_windows(probe: Tokenizer, texts: Sequence[str], budget: int, max_windows: int | None) -> Windows:
    """Cut each text into windows of at most ``budget`` tokens of ``probe`` (no truncation)."""
    pieces: list[str] = []
    owner: list[int] = []
    dropped: list[int] = []
    for index, text in enumerate(texts):
        windows, lost = _text_windows(probe, text, budget, max_windows)
        pieces += windows
        owner += [index] * len(windows)
        dropped.append(lost)
    return Windows(pieces, np.asarray(owner, dtype=np.int64), dropped)


def _text_windows(probe: Tokenizer, text: str, budget: int, max_windows: int | None) -> tuple[list[str], int]:
    stride = max(1, budget - int(budget * OVERLAP))
    reach = text if max_windows is None else window_text(probe, text, stride * (max_windows - 1) + budget)
    encoding = probe.encode(reach, add_special_tokens=False)
    n = len(encoding.ids)
    if n <= budget:
        return [text], 0
    words, offsets = encoding.word_ids, encoding.offsets
    windows: list[str] = []
    start = 0
    while True:
        end = min(start + budget, n)
        cut = _word_end(words, start, end, n)
        windows.append(text[offsets[start][0] : offsets[cut - 1][1]])
        if end == n or (max_windows is not None and len(windows) == max_windows):
            return windows, n - cut + (len(reach) < len(text))
        start = _word_start(words, start + stride, cut)


def _word_end(words: list[int | None], start: int, end: int, n: int) -> int:
    """``end`` moved back to the end of a whole word (unless the window is one long word)."""
    cut = end
    while cut < n and cut > start + 1 and words[cut] is not None and words[cut] == words[cut - 1]:
        cut -= 1
    return cut if cut > start + 1 or end == n else end


def _word_start(words: list[int | None], start: int, limit: int) -> int:
    """``start`` moved forward to the first token of a word, but not past ``limit``."""
    moved = start
    while moved < limit and words[moved] is not None and words[moved] == words[moved - 1]:
        moved += 1
    return moved if moved < limit else start


def combine_rows(rows: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """One text's score row from its windows' rows: mean (single-label) or max (multi-label)."""
    if len(rows) == 1:
        return rows[0]
    combined = rows.max(axis=0) if multi_label else rows.mean(axis=0, dtype=np.float64)
    return combined.astype(np.float32)
