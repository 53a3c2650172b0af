"""The zsl-serve command: check the flags, load and warm the model, then serve until SIGTERM.

Every start-up failure (a flag, the key, the bundle, a missing extra) is one line
``zsl-serve: error: ...`` and exit status 2, before any port is bound. SIGTERM (or Ctrl+C)
stops taking connections, answers the requests in flight within ``--grace-s``, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from zsl_onnx import ZeroShotClassifier, ZslOnnxError, __version__

from .config import ServeConfig
from .security import SecurityError, resolve_api_key

__all__ = ["build_parser", "main"]

PROG = "zsl-serve"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in the one start-up error line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Serve a zsl-onnx model over HTTP (docs/serve.md).")
    parser.add_argument("model", metavar="BUNDLE_OR_MODEL_ID", help="a bundle directory or a Hugging Face Hub repo id")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    model = parser.add_argument_group("model")
    model.add_argument("--variant", choices=("fp32", "int8", "fp16"), help="default: int8 on CPU when present")
    model.add_argument("--threads", type=_positive_int, help="onnxruntime intra-op threads")
    model.add_argument("--offline", action="store_true", help="load a Hub model from the local cache only")
    net = parser.add_argument_group("network and security")
    net.add_argument("--host", default=ServeConfig.host, help="address to bind (default %(default)s: loopback only)")
    net.add_argument("--port", type=_port, default=ServeConfig.port, help="default %(default)s")
    net.add_argument("--api-key-file", help="file holding the Bearer key clients must send")
    net.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the Bearer key")
    net.add_argument("--trusted-network", action="store_true",
                     help="allow a non-loopback --host without an API key")
    net.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                     help="allow browser calls from this origin (repeatable; default: no CORS)")
    limits = parser.add_argument_group("batching and limits")
    limits.add_argument("--max-batch-size", type=_positive_int, default=ServeConfig.max_batch_size,
                        help="texts merged into one model call; 1 turns batching off (default %(default)s)")
    limits.add_argument("--max-wait-ms", type=_non_negative, default=ServeConfig.max_wait_ms,
                        help="after a merged call, how long the idle model may wait for more requests "
                             "(default %(default)s; a lone request never waits)")
    limits.add_argument("--max-queue", type=_positive_int, default=ServeConfig.max_queue,
                        help="requests waiting for the model before 503 (default %(default)s)")
    limits.add_argument("--max-body-bytes", type=_positive_int, default=ServeConfig.max_body_bytes,
                        help="largest request body, else 413 (default %(default)s)")
    limits.add_argument("--max-texts", type=_positive_int, default=ServeConfig.max_texts,
                        help="texts per request, else 422 (default %(default)s)")
    limits.add_argument("--max-labels", type=_positive_int, default=ServeConfig.max_labels,
                        help="candidate labels per request, else 422 (default %(default)s)")
    limits.add_argument("--timeout-s", type=_positive_float, default=ServeConfig.timeout_s,
                        help="per-request deadline, else 504 (default %(default)s)")
    limits.add_argument("--grace-s", type=_non_negative, default=ServeConfig.grace_s,
                        help="on SIGTERM, time given to requests in flight (default %(default)s)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        _fail(f"zsl-serve needs the [serve] extra ({exc.name} is missing): pip install \"zsl-onnx[serve]\"")
    try:
        config = _config(args)
    except SecurityError as exc:
        _fail(str(exc))
    clf = _load(args)
    server = uvicorn.Server(uvicorn.Config(
        create_app(clf, config), host=config.host, port=config.port, log_level=args.log_level,
        limit_concurrency=config.connection_limit, timeout_graceful_shutdown=config.grace_s,  # type: ignore[arg-type]
        server_header=False, proxy_headers=False, access_log=args.log_level == "debug",
    ))
    _quiet_after_shutdown()
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind; say so in the one start-up error form
        server.started = False
    if not server.started:
        _fail(f"could not listen on {config.host}:{config.port} (see the log above)")


def _config(args: argparse.Namespace) -> ServeConfig:
    api_key = resolve_api_key(args.host, key_file=args.api_key_file, key_env=args.api_key_env,
                              trusted_network=args.trusted_network)
    return ServeConfig(
        host=args.host, port=args.port, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue, max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
        max_labels=args.max_labels, timeout_s=args.timeout_s, grace_s=args.grace_s, api_key=api_key,
        cors_origins=tuple(args.cors_origin),
    )


def _load(args: argparse.Namespace) -> ZeroShotClassifier:
    """Load the model and run it once, so the first client does not pay for the warm-up."""
    log = logging.getLogger("zsl_onnx.serve")
    try:
        clf = ZeroShotClassifier.from_pretrained(args.model, variant=args.variant, threads=args.threads,
                                                 local_files_only=args.offline)
        if clf.kind == "embedding":
            clf.embed(["zsl-serve warm-up"])
        clf("zsl-serve warm-up", ["first", "second"])
    except (ZslOnnxError, OSError) as exc:
        _fail(_one_line(exc))
    except Exception as exc:  # noqa: BLE001 - a start-up failure is one line, whatever raised it
        logging.getLogger("zsl_onnx.serve").debug("loading failed", exc_info=exc)
        _fail(f"loading {args.model} failed: {type(exc).__name__}: {_one_line(exc)}")
    log.info("loaded %r", clf)
    return clf


def _quiet_after_shutdown() -> None:
    """Catch SIGTERM and SIGINT before uvicorn does: after its graceful shutdown it re-raises the
    signal to the handler it found, and this one lets the process exit 0 instead of dying by it."""

    def ignore(signum: int, frame: Any) -> None:
        return None

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, not {text}")
    return value
