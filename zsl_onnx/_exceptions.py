"""Every error zsl-onnx raises derives from :class:`ZslOnnxError`.

Catch the base class to handle anything of ours; catch a subclass to handle one kind of
problem. Input errors also derive from ``ValueError`` so code written against the
transformers pipeline (which raises ``ValueError``) keeps working.

Errors of the libraries we call (onnxruntime, tokenizers, huggingface-hub, the OS) become ours
in one place, :func:`mapped_errors`, so a caller never has to know which library failed and
every message keeps the same shape: what failed, the cause in one short line, the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "BundleError",
    "ChecksumMismatchError",
    "HypothesisTooLongError",
    "InvalidInputError",
    "NoEntailmentLabelError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "TruncationWarning",
    "ZslOnnxError",
    "mapped_errors",
    "short_cause",
]

# A third-party message is cut to this many characters: urllib3 and pybind messages can run to
# hundreds, and what matters is in the first line.
CAUSE_CHARS = 200


class ZslOnnxError(Exception):
    """Base class of every zsl-onnx error."""


class BundleError(ZslOnnxError):
    """A model bundle is missing, incomplete or unreadable."""


class ChecksumMismatchError(BundleError):
    """A model file's size or sha256 differs from the one its manifest records."""


class NoEntailmentLabelError(ZslOnnxError, ValueError):
    """The model's config has no label starting with "entail", so it cannot score labels."""


class InvalidInputError(ZslOnnxError, ValueError):
    """The texts, labels, template or options passed by the caller are not usable."""


class HypothesisTooLongError(InvalidInputError):
    """A hypothesis (template + label) leaves no room for the text within max_length."""


class ProviderUnavailableError(ZslOnnxError):
    """A requested ONNX Runtime execution provider is not available in this install."""


class TruncationWarning(UserWarning):
    """Texts were cut to fit the model's input, as the pipeline cuts them.

    ``rows`` are the positions of the cut texts in the call, ``dropped`` the tokens each lost
    (a lower bound for texts longer than the model can reach; the message says when).
    """

    def __init__(self, message: str, *, rows: tuple[int, ...] = (), dropped: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows
        self.dropped = dropped


class ProviderFallbackWarning(RuntimeWarning):
    """ONNX Runtime silently dropped a requested provider and runs on another one (usually CPU)."""


def short_cause(exc: BaseException) -> str:
    """``Type: first line of the message``, at most :data:`CAUSE_CHARS` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= CAUSE_CHARS else text[: CAUSE_CHARS - 3] + "..."


@contextmanager
def mapped_errors(problem: str, fix: str, error: type[ZslOnnxError] = BundleError) -> Iterator[None]:
    """Re-raise a third-party exception from the block as ``error("problem (cause). fix")``.

    Our own errors pass through unchanged; so do ``MemoryError`` and everything that is not an
    ``Exception`` (KeyboardInterrupt, SystemExit), which no message of ours could fix. The
    original stays attached as ``__cause__`` for debugging.
    """
    try:
        yield
    except (ZslOnnxError, MemoryError):
        raise
    except Exception as exc:  # onnxruntime and tokenizers raise untyped or pybind-specific errors
        raise error(f"{problem} ({short_cause(exc)}). {fix}") from exc
