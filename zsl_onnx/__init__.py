"""zsl-onnx: zero-shot text classification with NLI cross-encoders on ONNX Runtime.

>>> from zsl_onnx import ZeroShotClassifier
>>> clf = ZeroShotClassifier.from_pretrained("path/to/bundle")  # doctest: +SKIP
>>> clf("The match went to extra time.", ["sports", "politics"])  # doctest: +SKIP
"""

from ._classifier import ZeroShotClassifier
from ._exceptions import (
    BundleError,
    ChecksumMismatchError,
    HypothesisTooLongError,
    InvalidInputError,
    NoEntailmentLabelError,
    ProviderFallbackWarning,
    ProviderUnavailableError,
    ZslOnnxError,
)
from ._hypotheses import DEFAULT_TEMPLATE
from ._labels import LabelSpec
from ._version import __version__

__all__ = [
    "DEFAULT_TEMPLATE",
    "BundleError",
    "ChecksumMismatchError",
    "HypothesisTooLongError",
    "InvalidInputError",
    "LabelSpec",
    "NoEntailmentLabelError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "ZeroShotClassifier",
    "ZslOnnxError",
    "__version__",
]
