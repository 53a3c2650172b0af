"""The FastAPI application: routes over one loaded ZeroShotClassifier and its batcher.

``create_app`` takes a classifier that is already loaded and warmed (the command line does
that, so a bad bundle stops the server before it binds a port). Routes parse the body by hand
(schemas.py), hand the texts to the batcher, and wait for the result, the client leaving, or
the deadline, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response

import zsl_onnx
from zsl_onnx import ZeroShotClassifier

from .batcher import Batcher, Job, QueueFullError
from .config import ServeConfig
from .errors import ApiError, JsonResponse, install_error_handlers
from .metrics import Metrics
from .middleware import GuardMiddleware
from .runner import make_runner, merge_key
from .schemas import ClassifyRequest, EmbedRequest, openapi_body, parse_body, work_of

__all__ = ["create_app"]

RETRY_AFTER_S = "1"


def create_app(clf: ZeroShotClassifier, config: ServeConfig) -> FastAPI:
    """The app, with its batcher started and stopped by the lifespan and the guard in front."""
    metrics = Metrics()
    batcher_box: dict[str, Batcher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = Batcher(make_runner(clf), max_batch_size=config.max_batch_size, max_wait_s=config.max_wait_s,
                          max_queue=config.max_queue, observe=metrics.observe_batch)
        batcher.start()
        batcher_box["batcher"] = batcher
        metrics.queue_depth = lambda: batcher.depth
        metrics.busy = lambda: batcher.busy
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await batcher.close()

    app = FastAPI(title="zsl-serve", version=zsl_onnx.__version__, lifespan=lifespan,
                  default_response_class=JsonResponse,
                  description="Zero-shot text classification over HTTP with zsl-onnx.")
    app.state.ready = False
    install_error_handlers(app)
    _model_routes(app, clf, config, batcher_box)
    _service_routes(app, clf, config, metrics)
    app.add_middleware(GuardMiddleware, metrics=metrics, api_key=config.api_key,  # type: ignore[arg-type]
                       max_body_bytes=config.max_body_bytes)
    if config.cors_origins:  # added last, so it runs first: preflights need no key
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),  # type: ignore[arg-type]
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    return app


def _model_routes(app: FastAPI, clf: ZeroShotClassifier, config: ServeConfig, box: dict[str, Batcher]) -> None:
    """The model's routes. Each returns its JsonResponse itself: FastAPI would otherwise walk the
    result through ``jsonable_encoder`` first (0.5 ms per 384-float vector, on the event loop)."""

    async def answer(request: Request, endpoint: str, model: type[EmbedRequest]) -> tuple[EmbedRequest, list[Any]]:
        body = parse_body(await request.body(), model, config)
        work = work_of(endpoint, body)
        try:
            job = box["batcher"].submit(merge_key(clf.kind, work), work, len(work.texts))
        except QueueFullError as exc:
            raise ApiError(503, "queue_full", f"The server is busy: {exc}; retry later.",
                           {"Retry-After": RETRY_AFTER_S}) from None
        return body, await _wait(request, box["batcher"], job, config.timeout_s)

    @app.post("/v1/classify", openapi_extra=openapi_body(ClassifyRequest),
              summary="Ranked labels per text, as the Python call returns them")
    async def classify(request: Request) -> Response:
        body, results = await answer(request, "classify", ClassifyRequest)
        return JsonResponse(results[0] if isinstance(body.sequences, str) else results)

    @app.post("/v1/scores", openapi_extra=openapi_body(ClassifyRequest),
              summary="Score matrix [texts, labels], labels in the order given")
    async def scores(request: Request) -> Response:
        _, rows = await answer(request, "scores", ClassifyRequest)
        return JsonResponse({"scores": rows})

    @app.post("/v1/embed", openapi_extra=openapi_body(EmbedRequest),
              summary="Sentence vectors [texts, dim] (embedding bundles)")
    async def embed(request: Request) -> Response:
        if clf.kind != "embedding":
            raise ApiError(422, "unsupported_for_model",
                           f"/v1/embed needs an embedding bundle; this server runs an {clf.kind!r} bundle. "
                           "Use /v1/classify or /v1/scores.")
        _, rows = await answer(request, "embed", EmbedRequest)
        return JsonResponse({"embeddings": rows})


def _service_routes(app: FastAPI, clf: ZeroShotClassifier, config: ServeConfig, metrics: Metrics) -> None:
    @app.get("/v1/model", summary="The model this server runs, and its limits")
    async def model() -> dict[str, Any]:
        return model_info(clf, config)

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the model is loaded and warmed")
    async def ready(request: Request) -> Response:
        is_ready = bool(request.app.state.ready)
        return JsonResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def model_info(clf: ZeroShotClassifier, config: ServeConfig) -> dict[str, Any]:
    """What /v1/model reports: the model, the software, and the limits a client must respect."""
    try:
        ort_version = version("onnxruntime")
    except PackageNotFoundError:  # onnxruntime-gpu and friends install under other names
        import onnxruntime

        ort_version = onnxruntime.__version__
    info: dict[str, Any] = {"kind": clf.kind, "variant": clf.variant, "max_length": clf.max_length,
                            "hypothesis_template": clf.hypothesis_template, "providers": clf.providers,
                            "zsl_onnx_version": zsl_onnx.__version__, "onnxruntime_version": ort_version}
    info.update({k: v for k, v in clf.scorer.describe().items() if k == "labels"})
    info["limits"] = {"max_texts": config.max_texts, "max_labels": config.max_labels,
                      "max_body_bytes": config.max_body_bytes, "timeout_s": config.timeout_s,
                      "max_batch_size": config.max_batch_size}
    return info


async def _wait(request: Request, batcher: Batcher, job: Job, timeout_s: float) -> list[Any]:
    """The job's results, unless the client leaves (its queued work is dropped) or time runs out (504)."""
    left = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({job.future, left}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if job.future.done() and not job.future.cancelled():
        exc = job.future.exception()
        if isinstance(exc, QueueFullError):
            raise ApiError(503, "unavailable", str(exc), {"Retry-After": RETRY_AFTER_S})
        return job.future.result()
    batcher.cancel(job)
    if left in done:
        raise ApiError(499, "client_closed_request", "The client closed the connection.")
    raise ApiError(504, "timeout", f"No answer within {timeout_s:g} s (--timeout-s); the server is overloaded.")


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body was read already, so only that can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
