"""The server's settings: one frozen object that the command line builds and the app reads.

Every limit has a default that keeps one small machine safe under load it cannot serve; each
is a flag of ``zsl-serve`` (docs/serve.md says what each one protects).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and switches of one server. Times in seconds unless the name says otherwise."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # texts merged into one model call (1: no batching)
    max_wait_ms: float = 5.0  # after a merged call, how long the idle model may wait for company
    max_queue: int = 256  # requests admitted but not yet started; more get 503
    max_body_bytes: int = 1 << 20
    max_texts: int = 64  # texts per request
    max_labels: int = 64  # candidate labels per request
    timeout_s: float = 30.0  # per-request deadline: 504 after it
    grace_s: float = 10.0  # SIGTERM: time given to requests in flight
    api_key: str | None = None  # Bearer key; None: no key asked
    cors_origins: tuple[str, ...] = ()

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0

    @property
    def connection_limit(self) -> int:
        """Connections and requests the HTTP server accepts at once; beyond it, its own 503.

        The queue bound plus room for the batch that runs, the probes and idle keep-alive
        connections: past this, requests cannot even be read, so memory stays bounded.
        """
        return self.max_queue + 2 * self.max_batch_size + 64
