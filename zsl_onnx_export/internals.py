"""The exporter's parts that the benchmarks build on.

Not part of the user API, but a stable seam: ``benchmarks/`` imports exporter internals from
here only, never from the private ``zsl_onnx_export._*`` modules, so those stay free to change.
"""

from ._calibration import CalibrationSet, builtin_calibration
from ._embedding_calibration import GUARD_LABEL_SETS, builtin_labelled
from ._embedding_export import VALIDATION_TEXTS
from ._embedding_guard import _statistics as embedding_statistics
from ._embedding_guard import expected_agreement
from ._fp32 import export_onnx
from ._guard import PairRunner
from ._head_token import rewrite_file
from ._job import FP32_FILE, INT8_FILE
from ._activations import ActivationStats, collect_stats
from ._quantize import BASE_CANDIDATES, QuantConfig, RowQuantizer, quantize_model, save_model
from ._rowquant import matmul_inputs, quantize_weights, rowquant, saturation_free, weight_matmuls
from ._source import load_sequence_classifier

__all__ = [
    "GUARD_LABEL_SETS",
    "VALIDATION_TEXTS",
    "builtin_labelled",
    "embedding_statistics",
    "expected_agreement",
    "BASE_CANDIDATES",
    "ActivationStats",
    "RowQuantizer",
    "collect_stats",
    "matmul_inputs",
    "FP32_FILE",
    "INT8_FILE",
    "CalibrationSet",
    "PairRunner",
    "QuantConfig",
    "builtin_calibration",
    "export_onnx",
    "load_sequence_classifier",
    "quantize_model",
    "quantize_weights",
    "rowquant",
    "saturation_free",
    "save_model",
    "weight_matmuls",
    "rewrite_file",
]
