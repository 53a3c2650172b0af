"""The exporter's parts that the benchmarks build on.

Not part of the user API, but a stable seam: ``benchmarks/`` imports exporter internals from
here only, never from the private ``zsl_onnx_export._*`` modules, so those stay free to change.
"""

from ._embedding_calibration import GUARD_LABEL_SETS, builtin_labelled
from ._embedding_export import VALIDATION_TEXTS
from ._fp32 import export_onnx
from ._head_token import rewrite_file
from ._job import FP32_FILE, INT8_FILE
from ._source import load_sequence_classifier
from .int8.calibration import CalibrationSet, builtin_calibration
from .int8.candidates import BASE_CANDIDATES, QuantConfig, RowQuantizer, quantize_model, save_model
from .int8.embedding import expected_agreement
from .int8.embedding import statistics as embedding_statistics
from .int8.nli import PairRunner
from .int8.rowquant import matmul_inputs, rowquant, weight_matmuls
from .int8.stats import ActivationStats, collect_stats
from .int8.weights import quantize_weights, saturation_free

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
