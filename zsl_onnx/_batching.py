"""Stage 3: group encoded pairs into micro-batches padded only to their own longest pair.

Sorting by length first means a batch of short pairs never pays for one long pair, which is
most of the speed-up over the pipeline's one-pair-at-a-time loop on mixed-length inputs.

A batch is also capped in padded tokens (rows x width), not only in rows: on CPU the
activations of a big batch (the FFN's [rows x width x 4*hidden] block) fall out of cache and
throughput drops. On the fixture, news items x 10 labels ran about 6% faster in batches
of at most 512 tokens than in batches of 32 pairs (~2,200 tokens); see the token-cap table
of ``benchmarks/bench_speed.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding


@dataclass(frozen=True)
class Batch:
    """One padded micro-batch; ``positions`` says where each row goes in the caller's order."""

    positions: np.ndarray  # int64 [rows]
    input_ids: np.ndarray  # int64 [rows, length]
    attention_mask: np.ndarray  # int64 [rows, length]
    token_type_ids: np.ndarray  # int64 [rows, length]


def make_batches(
    encodings: Sequence[Encoding], *, batch_size: int, pad_id: int, max_tokens: int | None = None
) -> Iterator[Batch]:
    """Yield batches of at most ``batch_size`` pairs and ``max_tokens`` padded tokens.

    Shortest pairs come first. A single pair longer than ``max_tokens`` still gets a batch.
    """
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    order = np.argsort(lengths, kind="stable")
    for positions in _split(lengths[order], batch_size, max_tokens):
        yield _pad([encodings[i] for i in order[positions]], order[positions], pad_id)


def _split(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int | None) -> Iterator[slice]:
    """Cut ascending lengths into runs; a run's cost is its row count x its last (longest) length."""
    start = 0
    total = len(sorted_lengths)
    while start < total:
        stop = min(start + batch_size, total)
        if max_tokens is not None:
            # Padded cost of taking k rows is k * (length of row k); it grows with k.
            costs = np.arange(1, stop - start + 1) * sorted_lengths[start:stop]
            stop = start + max(1, int(np.searchsorted(costs, max_tokens, side="right")))
        yield slice(start, stop)
        start = stop


def _pad(encodings: Sequence[Encoding], positions: np.ndarray, pad_id: int) -> Batch:
    width = max(len(e.ids) for e in encodings)
    rows = len(encodings)
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((rows, width), dtype=np.int64)
    token_type_ids = np.zeros((rows, width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        input_ids[row, :n] = encoding.ids
        attention_mask[row, :n] = encoding.attention_mask
        token_type_ids[row, :n] = encoding.type_ids
    return Batch(positions, input_ids, attention_mask, token_type_ids)
