"""Exporter errors, under the runtime's single base class."""

from __future__ import annotations

from zsl_onnx import ZslOnnxError

__all__ = ["ExportError", "ExportValidationError", "SourceError"]


class ExportError(ZslOnnxError):
    """The model cannot be exported (bad source, unsupported architecture, output in the way)."""


class ExportValidationError(ExportError):
    """The exported ONNX model does not reproduce PyTorch's logits within tolerance."""


class SourceError(ExportError):
    """A file of the model source (archive, module config, tokenizer, weights) cannot be read or
    loaded. The message names the file and the fix, never the file's contents."""

