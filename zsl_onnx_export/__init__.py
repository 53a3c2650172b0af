"""zsl-onnx's exporter: transformers NLI model -> validated ONNX bundle (``pip install zsl-onnx[export]``)."""

from ._api import ExportResult, export_bundle
from ._errors import ExportError, ExportValidationError, SourceError
from ._job import ExportOptions

__all__ = ["ExportError", "ExportOptions", "ExportResult", "ExportValidationError", "SourceError", "export_bundle"]
