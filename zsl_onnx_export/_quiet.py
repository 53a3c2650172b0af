"""Keep third-party noise out of the export log, for the duration of one export only.

torch's tracer warns about every constant it records (``TracerWarning``), torch, transformers
and optimum warn about their own deprecations, and optimum's exporter says to install
accelerate for a check it skips: none of it concerns the user of ``zsl-export``, and in a log
it reads like an error. Nor does the runtime's ``TruncationWarning`` when the guard or the
validation scores a calibration text longer than a small model's input: those texts are ours,
and they are cut the same way in fp32 and int8. Inside :func:`quiet_third_party` those
warnings are ignored and the transformers and optimum log errors only; on the way out the
warning filters and both verbosities are restored, so the caller's own settings are untouched.
Other warnings still show.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from zsl_onnx import TruncationWarning

__all__ = ["NOISY_MODULES", "quiet_third_party"]

# Deprecation warnings attributed to these packages (a regex on the warning's module) are theirs
# to fix, not the user's.
NOISY_MODULES = r"(torch|transformers|optimum|onnx|onnxscript|huggingface_hub)(\.|$)"
_LOGGING = ("transformers.utils.logging", "optimum.utils.logging")  # their verbosity settings


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence known third-party noise inside the block; restore every setting after it."""
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=NOISY_MODULES)
        warnings.filterwarnings("ignore", category=TruncationWarning)
        tracer = _tracer_warning()
        if tracer is not None:
            warnings.filterwarnings("ignore", category=tracer)
        for module in _LOGGING:
            stack.enter_context(_verbosity(module, logging.ERROR))
        yield


def _tracer_warning() -> type[Warning] | None:
    """torch's TracerWarning class, or None where torch is not installed."""
    try:
        from torch.jit import TracerWarning
    except ImportError:
        return None
    return TracerWarning


@contextmanager
def _verbosity(module: str, level: int) -> Iterator[None]:
    """Set a library's logging verbosity (``module`` has ``get_verbosity``/``set_verbosity``, as
    transformers' and optimum's logging modules do) to at least ``level`` inside the block, then
    back to what it was. A library that is not installed is left alone."""
    try:
        library = importlib.import_module(module)
    except ImportError:
        yield
        return
    before = library.get_verbosity()
    library.set_verbosity(max(level, before))
    try:
        yield
    finally:
        library.set_verbosity(before)
