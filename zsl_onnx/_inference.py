"""The one inference loop: encodings -> length-sorted micro-batches -> model -> rows in input order.

Every caller runs models through :func:`run_encodings`: the classifier, the exporter's int8
guard and the benchmarks, so a batching rule (sorting, token cap) changes in one place and
what the guard measures is what users get.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Encoding

from ._batching import Batch, make_batches

RunBatch = Callable[[Batch], np.ndarray]


def run_encodings(
    encodings: Sequence[Encoding],
    run: RunBatch,
    *,
    batch_size: int,
    pad_id: int,
    max_tokens: int | None,
) -> np.ndarray:
    """``run`` over micro-batches of ``encodings``; returns its rows stacked in input order.

    ``run`` maps one padded batch to a float array with one row per batch row (logits for a
    cross-encoder, pooled vectors for an embedding model).
    """
    out: np.ndarray | None = None
    for batch in make_batches(encodings, batch_size=batch_size, pad_id=pad_id, max_tokens=max_tokens):
        rows = run(batch)
        if out is None:
            out = np.empty((len(encodings), *rows.shape[1:]), dtype=np.float32)
        out[batch.positions] = rows
    if out is None:
        return np.empty((0, 0), dtype=np.float32)
    return out
