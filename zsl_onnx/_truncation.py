"""Saying when a text was cut to fit the model: counted per text, warned once per call.

The pipeline cuts a text that does not fit beside its hypothesis (``only_first``) without a
word; a classifier of a 2,000-word article then decides from its first paragraph. We cut the
same way, so scores stay the pipeline's, but a call that cuts anything raises one
:class:`~zsl_onnx.TruncationWarning` naming how many texts and tokens were dropped. The
warning carries the per-text numbers, so an application (zsl-classify) can record them.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Encoding

from ._exceptions import TruncationWarning
from ._tokenization import WHOLE_CHARS_PER_TOKEN

__all__ = ["overflow_tokens", "warn_truncated"]

_PACKAGE = str(Path(__file__).resolve().parent)


def overflow_tokens(encoding: Encoding, specials: int = 0) -> int:
    """Tokens of ``encoding``'s text that truncation moved to its overflowing parts (each part
    carries ``specials`` special tokens of its own)."""
    return sum(len(part.ids) - specials for part in encoding.overflowing)


def warn_truncated(texts: Sequence[str], dropped: Sequence[int], window: int) -> None:
    """One TruncationWarning for the call if any text lost tokens; nothing otherwise.

    A text longer than the window's reach is tokenized only that far (see
    :func:`._tokenization.window_text`), so its count is a lower bound, and the message says so.
    """
    rows = tuple(i for i, count in enumerate(dropped) if count > 0)
    if not rows:
        return
    counts = tuple(int(dropped[i]) for i in rows)
    bound = any(len(texts[i]) > WHOLE_CHARS_PER_TOKEN * window for i in rows)
    total = f"{'at least ' if bound else ''}{sum(counts):,}"
    message = (
        f"{len(rows)} of {len(texts)} texts did not fit the model's {window}-token input and were cut, as the "
        f"pipeline cuts them: {total} tokens were not read. Pass long_text='chunk' to classify whole texts."
    )
    warnings.warn(TruncationWarning(message, rows=rows, dropped=counts), stacklevel=_caller_level())


def _caller_level() -> int:
    """The stacklevel that points the warning at the first frame outside this package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level
