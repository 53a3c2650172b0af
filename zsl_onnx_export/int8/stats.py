"""Statistics of the fp32 activations that feed weight MatMuls, over calibration pairs.

Per-row int8 needs two things from real inputs: each input channel's largest magnitude
(SmoothQuant's per-channel factors) and the Gram matrix X^T X of the inputs (GPTQ's Hessian,
which says how a rounding error in one weight row can be compensated by the others). Both
come from one pass of the fp32 graph with the activations exposed as extra outputs, through
the runtime's own inference loop. Padding tokens are left out: they never reach the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl_onnx.internals import Batch, run_encodings

__all__ = ["ActivationStats", "collect_stats", "run_probe"]


@dataclass
class ActivationStats:
    """One activation's statistics over the calibration rows (padding excluded)."""

    channel_max: np.ndarray  # float64 [K]: max |x| per input channel
    # sum of x x^T over rows [K, K]: summed in float64 over batches (each batch's product in
    # float32), kept in float32 once complete (``finish``): XLM-R large's 24 FFN inputs alone
    # would hold 3.2 GB in float64 for the whole search; GPTQ works in float64 either way
    gram: np.ndarray
    rows: int = 0
    low: float = np.inf  # smallest value seen in any channel
    high: float = -np.inf  # largest value seen in any channel
    total: np.ndarray | None = None  # float64 [K]: sum of x over rows

    def add(self, rows: np.ndarray) -> None:
        values = rows.astype(np.float64)
        self.channel_max = np.maximum(self.channel_max, np.abs(values).max(axis=0, initial=0.0))
        self.low = min(self.low, float(values.min(initial=np.inf)))
        self.high = max(self.high, float(values.max(initial=-np.inf)))
        self.total = values.sum(axis=0) + (0.0 if self.total is None else self.total)
        single = np.asarray(rows, dtype=np.float32)
        self.gram += single.T @ single
        self.rows += len(values)

    def finish(self) -> None:
        """Keep the Gram matrix in float32 from here on (no more rows)."""
        self.gram = self.gram.astype(np.float32)

    def offset(self, share: float = 0.05) -> float | None:
        """A floor for activations that are (nearly) never negative, like GELU outputs (>= -0.17):
        x - floor is then non-negative and can use all 256 uint8 levels instead of 128. None
        when the activation is signed."""
        if not np.isfinite(self.low) or self.high <= 0 or self.low < -share * self.high:
            return None
        return min(self.low, 0.0) * 1.05  # a margin for inputs a little lower than calibration's

    def shifted(self, offset: float) -> tuple[np.ndarray, np.ndarray]:
        """(max |x - offset| per channel, Gram matrix of x - offset) from the running sums."""
        assert self.total is not None
        peak = self.channel_max + abs(offset)
        ones = np.ones(len(self.total))
        gram = self.gram - offset * (np.outer(ones, self.total) + np.outer(self.total, ones)) + self.rows * offset**2
        return peak, gram


def run_probe(
    model: Any,
    outputs: Sequence[str],
    encodings: Sequence[Any],
    consume: Callable[[str, np.ndarray], None],
    *,
    make_session: Callable[[Any], Any],
    pad_id: int,
    batch_size: int,
    max_tokens: int | None,
) -> None:
    """Run ``model`` (onnx.ModelProto) on ``encodings`` with ``outputs`` exposed, through the
    runtime's inference loop; ``consume(name, rows)`` gets each output's real token rows
    (padding left out) batch by batch, so nothing grows with the data.

    ``make_session`` opens an onnxruntime session on a ModelProto (the graph with the
    outputs added). A ``model`` that already exposes every output is handed to it as it is, not
    copied: saving it with external data empties its tensors, so pass only a graph of your own.
    """
    import onnx

    exposed = {o.name for o in model.graph.output}
    missing = [name for name in outputs if name not in exposed]
    probe = model
    if missing:  # a copy with them: the caller's graph stays as it was
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for name in missing:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = make_session(probe)
    del probe
    inputs = {i.name for i in session.get_inputs()}

    def run(batch: Batch) -> np.ndarray:
        feed = {
            name: value
            for name, value in (
                ("input_ids", batch.input_ids),
                ("attention_mask", batch.attention_mask),
                ("token_type_ids", batch.token_type_ids),
            )
            if name in inputs
        }
        real = batch.attention_mask.astype(bool)
        for name, value in zip(outputs, session.run(list(outputs), feed)):
            # [rows, tokens, K] with padding, or already one token per row (head-token layers)
            consume(name, value[real] if value.ndim == 3 and value.shape[:2] == real.shape
                    else value.reshape(-1, value.shape[-1]))
        return np.zeros((len(batch.positions), 1), dtype=np.float32)

    run_encodings(encodings, run, batch_size=batch_size, pad_id=pad_id, max_tokens=max_tokens)


def collect_stats(
    model: Any,
    activations: Sequence[str],
    encodings: Sequence[Any],
    *,
    make_session: Callable[[Any], Any],
    pad_id: int,
    batch_size: int,
    max_tokens: int | None,
) -> dict[str, ActivationStats]:
    """Statistics of each named activation of ``model`` (onnx.ModelProto) on ``encodings``
    (``run_probe`` does the running)."""
    stats: dict[str, ActivationStats] = {}

    def add(name: str, rows: np.ndarray) -> None:
        if name not in stats:
            k = rows.shape[-1]
            stats[name] = ActivationStats(np.zeros(k), np.zeros((k, k)))
        stats[name].add(rows)

    run_probe(model, activations, encodings, add, make_session=make_session, pad_id=pad_id,
              batch_size=batch_size, max_tokens=max_tokens)
    for one in stats.values():
        one.finish()
    return stats
