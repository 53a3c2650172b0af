"""Every error zsl-onnx raises derives from :class:`ZslOnnxError`.

Catch the base class to handle anything of ours; catch a subclass to handle one kind of
problem. Input errors also derive from ``ValueError`` so code written against the
transformers pipeline (which raises ``ValueError``) keeps working.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ChecksumMismatchError",
    "HypothesisTooLongError",
    "InvalidInputError",
    "NoEntailmentLabelError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "ZslOnnxError",
]


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


class ProviderFallbackWarning(RuntimeWarning):
    """ONNX Runtime silently dropped a requested provider and runs on another one (usually CPU)."""
