"""Stage 4: run micro-batches through ONNX Runtime.

The feed is built from the inputs the graph declares (BERT wants token_type_ids, XLM-R,
DeBERTa and BART do not), never from what the tokenizer happens to return, and the logits are
read by output name because some exports (BART) have extra outputs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from ._batching import Batch
from ._exceptions import BundleError, InvalidInputError, ProviderFallbackWarning, ProviderUnavailableError, mapped_errors

_KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
LOGITS = "logits"

ProviderSpec = str | tuple[str, dict[str, Any]]
# More intra-op threads than this many per usable core only slow a session down (a thousand
# took 55 s to load on 2 cores): refused rather than run.
THREADS_PER_CORE = 4


class InferenceSessionLike(Protocol):
    """The slice of ``onnxruntime.InferenceSession`` we use; lets tests pass a fake."""

    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...
    def get_providers(self) -> list[str]: ...
    def run(self, output_names: list[str], input_feed: dict[str, np.ndarray]) -> list[Any]: ...


def input_feed_spec(session: InferenceSessionLike) -> list[tuple[str, type[np.integer[Any]]]]:
    """(name, dtype) of each graph input, checked against what a :class:`Batch` can fill."""
    spec: list[tuple[str, type[np.integer[Any]]]] = []
    for node in session.get_inputs():
        if node.name not in _KNOWN_INPUTS:
            raise BundleError(
                f"The ONNX graph has an input {node.name!r} that zsl-onnx cannot fill "
                f"(it feeds {', '.join(_KNOWN_INPUTS)}). Re-export the model with zsl-export."
            )
        if node.type not in _DTYPES:
            raise BundleError(
                f"The ONNX graph's input {node.name!r} has type {node.type}; "
                "expected int64 or int32 token ids."
            )
        spec.append((node.name, _DTYPES[node.type]))
    return spec


def build_feed(spec: list[tuple[str, type[np.integer[Any]]]], batch: Batch) -> dict[str, np.ndarray]:
    return {name: getattr(batch, name).astype(dtype, copy=False) for name, dtype in spec}


def require_output(session: InferenceSessionLike, name: str, fix: str) -> None:
    """Refuse a graph without the output a stage reads, naming what it has and ``fix``."""
    outputs = [node.name for node in session.get_outputs()]
    if name not in outputs:
        raise BundleError(f"The ONNX graph has no output named {name!r} (it has {outputs}); {fix}")


class LogitsSession:
    """Feeds :class:`Batch` objects to a session and returns float32 logits."""

    def __init__(self, session: InferenceSessionLike) -> None:
        self._session = session
        self._feed_spec = input_feed_spec(session)
        require_output(session, LOGITS, "export it as a sequence-classification model (zsl-export does).")

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self._feed_spec]

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, batch: Batch) -> np.ndarray:
        (logits,) = self._session.run([LOGITS], build_feed(self._feed_spec, batch))
        return np.asarray(logits, dtype=np.float32)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """None (ONNX Runtime's default: one per core) or 1 to THREADS_PER_CORE x the usable cores."""
    if threads is None:
        return
    limit = THREADS_PER_CORE * usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise InvalidInputError(
            f"threads must be an integer from 1 to {limit} ({THREADS_PER_CORE} per usable core), not {threads!r}; "
            "leave it out to use one thread per core."
        )


def provider_name(provider: ProviderSpec) -> str:
    return provider if isinstance(provider, str) else provider[0]


DYNAMIC_BLOCK_BASE = "session.dynamic_block_base"


def create_session(
    model_path: Path,
    *,
    providers: Sequence[ProviderSpec] | None = None,
    threads: int | None = None,
    session_options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """Open an ONNX file with checked providers; a silent fallback to CPU becomes a warning."""
    requested = list(providers) if providers else ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    missing = [provider_name(p) for p in requested if provider_name(p) not in available]
    if missing:
        raise ProviderUnavailableError(
            f"Execution provider(s) {missing} are not available in this onnxruntime install; "
            f"available: {available}. Install the matching onnxruntime package "
            "(e.g. onnxruntime-gpu for CUDAExecutionProvider) or pick one of those."
        )
    if threads is not None and session_options is not None:
        raise InvalidInputError(
            "Pass either threads= or session_options=, not both: set intra_op_num_threads on "
            "your SessionOptions instead (we do not modify objects you pass in)."
        )
    check_threads(threads)
    options = session_options
    if options is None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        # Hand out parallel loops in shrinking blocks instead of one equal share per thread, so
        # a thread slowed by another process does not hold up the op: the many short
        # element-wise ops of per-row int8 gain most. Same numbers, bit for bit.
        options.add_session_config_entry(DYNAMIC_BLOCK_BASE, "4")
        if threads is not None:
            options.intra_op_num_threads = threads
    with mapped_errors(f"ONNX Runtime cannot load {model_path}", "Re-download or re-export the bundle."):
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=requested)
    active = session.get_providers()
    dropped = [provider_name(p) for p in requested if provider_name(p) not in active]
    if dropped:
        warnings.warn(
            f"ONNX Runtime did not enable {dropped} (missing CUDA/cuDNN libraries or driver?) and "
            f"runs on {active} instead; check the onnxruntime log above.",
            ProviderFallbackWarning,
            stacklevel=3,
        )
    return session
