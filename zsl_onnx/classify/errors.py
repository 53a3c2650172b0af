"""The errors a zsl-classify run raises besides the runtime's (``ResumeError`` is in ``checkpoint``,
``OutputBusyError`` in ``lock``); all are ``ZslOnnxError``, which the command prints as one line."""

from __future__ import annotations

from zsl_onnx import InvalidInputError, ZslOnnxError

__all__ = ["InvalidRecordError", "StopRunError"]


class InvalidRecordError(InvalidInputError):
    """An input record cannot be classified (and --skip-invalid was not given)."""


class StopRunError(ZslOnnxError):
    """The run stopped before the end of the input; the last checkpoint can be resumed."""
