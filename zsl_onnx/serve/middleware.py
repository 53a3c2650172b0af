"""The ASGI layer in front of every route: metrics, the API key, and the body-size limit.

Written as plain ASGI (not Starlette's BaseHTTPMiddleware) so a client's disconnect still
reaches the route, and so an oversized body is refused before more than the limit is read.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import error_response
from .metrics import Metrics

__all__ = ["GuardMiddleware", "OPEN_PATHS"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/ready"})  # probes answer without a key
KNOWN_PATHS = frozenset({"/v1/classify", "/v1/scores", "/v1/embed", "/v1/model", "/health", "/ready", "/metrics",
                         "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"})


class GuardMiddleware:
    """Counts every answer, checks ``Authorization: Bearer KEY``, and bounds the body it reads."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.key = api_key.encode() if api_key is not None else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), [500]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counting_send)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.observe_request(path, status[0], time.monotonic() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is not None and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            response = error_response(401, "unauthorized", "Send the API key as 'Authorization: Bearer KEY'.",
                                      {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive)
        if body is None:
            response = error_response(413, "payload_too_large",
                                      f"The body is over {self.max_body_bytes} bytes (--max-body-bytes).",
                                      {"Connection": "close"})
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorized(self, scope: Scope) -> bool:
        """Compare in constant time, so the answer's timing tells nothing about the key."""
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
        scheme, _, token = given.partition(b" ")
        expected = self.key or b""
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it is known to exceed the limit."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body once, then the real channel (where a disconnect arrives)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
