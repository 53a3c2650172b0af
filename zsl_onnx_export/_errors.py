"""Exporter errors, under the runtime's single base class."""

from __future__ import annotations

from zsl_onnx import ZslOnnxError


class ExportError(ZslOnnxError):
    """The model cannot be exported (bad source, unsupported architecture, output in the way)."""


class ExportValidationError(ExportError):
    """The exported ONNX model does not reproduce PyTorch's logits within tolerance."""
