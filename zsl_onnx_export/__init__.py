"""zsl-onnx's exporter: transformers NLI model -> validated ONNX bundle (``pip install zsl-onnx[export]``)."""

from ._api import ExportResult, export_bundle
from ._errors import ExportError, ExportValidationError, SourceError

__all__ = ["ExportError", "ExportResult", "ExportValidationError", "SourceError", "export_bundle"]
