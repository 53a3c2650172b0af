"""The one error every evaluation step raises for bad input; the CLI turns it into one line."""

from __future__ import annotations

from .. import InvalidInputError

__all__ = ["EvaluationError"]


class EvaluationError(InvalidInputError):
    """Input that cannot be evaluated: the message names the file, the problem and the fix."""
