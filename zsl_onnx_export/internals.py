"""The exporter's parts that the benchmarks build on.

Not part of the user API, but a stable seam: ``benchmarks/`` imports exporter internals from
here only, never from the private ``zsl_onnx_export._*`` modules, so those stay free to change.
"""

from ._calibration import CalibrationSet, builtin_calibration
from ._fp32 import export_onnx
from ._graph import optimize_for_int8
from ._guard import PairRunner
from ._head_token import rewrite_file
from ._job import FP32_FILE, INT8_FILE
from ._quantize import BASE_CANDIDATES, QuantConfig, quantize
from ._source import load_sequence_classifier

__all__ = [
    "BASE_CANDIDATES",
    "FP32_FILE",
    "INT8_FILE",
    "CalibrationSet",
    "PairRunner",
    "QuantConfig",
    "builtin_calibration",
    "export_onnx",
    "load_sequence_classifier",
    "optimize_for_int8",
    "quantize",
    "rewrite_file",
]
