"""zsl-onnx: zero-shot text classification on ONNX Runtime, with NLI cross-encoders or
sentence-embedding models.

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
    TruncationWarning,
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
    "TruncationWarning",
    "ZeroShotClassifier",
    "ZslOnnxError",
    "__version__",
]

# Public classes report the package as their home (``zsl_onnx.BundleError``, not
# ``zsl_onnx._exceptions.BundleError``) in tracebacks, reprs and docs, as httpx does.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value
