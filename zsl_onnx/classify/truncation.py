"""Counting what truncation cut, per text, without a Python warning line on stderr.

The runtime says once per call that texts were cut (:class:`~zsl_onnx.TruncationWarning`,
with the positions and token counts). zsl-classify turns that into numbers it can write and
sum: each result gets ``DROPPED`` (tokens not read, 0 when none), the summary counts the
truncated records, and ``--truncation-field`` writes the count. The warning itself is caught
here, in the one thread that calls the classifier (or in the Ray actor), so stderr stays the
command's own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from zsl_onnx import TruncationWarning

__all__ = ["DROPPED", "classify_counting"]

DROPPED = "dropped_tokens"


def classify_counting(clf: Callable[..., list[dict[str, Any]]], texts: Sequence[str],
                      labels: Sequence[str] | Sequence[Sequence[str]], **options: Any) -> list[dict[str, Any]]:
    """``clf(texts, labels, **options)``, each result with ``DROPPED``; other warnings pass on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)  # never deduplicated away: every call counts
        results: list[dict[str, Any]] = clf(list(texts), labels, **options)
    dropped = [0] * len(results)
    for item in caught:
        if isinstance(item.message, TruncationWarning):
            for row, count in zip(item.message.rows, item.message.dropped):
                dropped[row] += int(count)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    for result, count in zip(results, dropped):
        result[DROPPED] = count
    return results
