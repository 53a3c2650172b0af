"""One error body for every 4xx and 5xx: ``{"error": {"type": ..., "message": ...}}``.

Caller errors carry the package's own message (``InvalidInputError`` -> 422); anything
unexpected is logged here with its traceback and answered with a generic 500 that reveals
nothing about the server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zsl_onnx import InvalidInputError

__all__ = ["ApiError", "JsonResponse", "error_body", "error_response", "install_error_handlers"]

log = logging.getLogger("zsl_onnx.serve")

MESSAGE_LIMIT = 500  # characters of a message echoed back; a message may quote the input
HTTP_TYPES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "invalid_input", 503: "unavailable", 504: "timeout"}


class ApiError(Exception):
    """An answer other than 200: status, error type, message and optional headers."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers or {}


class JsonResponse(JSONResponse):
    """JSON with non-ASCII escaped: a text holding any code point still gives valid UTF-8 bytes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(kind: str, message: str) -> dict[str, Any]:
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return {"error": {"type": kind, "message": message}}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JsonResponse(error_body(kind, message), status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.kind, exc.message, exc.headers)


async def _invalid_input(_: Request, exc: Exception) -> Response:
    return error_response(422, "invalid_input", str(exc))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = HTTP_TYPES.get(exc.status_code, "error" if exc.status_code < 500 else "server_error")
    return error_response(exc.status_code, kind, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "The server failed to answer this request; the error is in its log.")


def install_error_handlers(app: Any) -> None:
    """Route every exception type to the one error body; the last one is the catch-all."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
