"""zsl-serve's app in this process: the embedding endpoint on a fake-encoder embedding model, and a
server bug answered with a generic 500 that shows no traceback."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from test_embedding_runtime import LABELS, TEXTS, make  # noqa: E402

from zsl_onnx.serve.app import create_app  # noqa: E402
from zsl_onnx.serve.config import ServeConfig  # noqa: E402

pytestmark = pytest.mark.serve


def roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def drive(app: Any, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``body(client)`` against the app inside its lifespan (the batcher runs only there)."""

    async def main() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await body(client)

    return asyncio.run(main())


def test_embed_scores_and_classify_on_an_embedding_model():
    clf = make()

    async def body(client: Any) -> list[Any]:
        return [await client.post("/v1/embed", json={"sequences": TEXTS}),
                await client.post("/v1/embed", json={"sequences": TEXTS[0]}),
                await client.post("/v1/classify", json={"sequences": TEXTS[0], "candidate_labels": LABELS}),
                await client.get("/v1/model"), await client.get("/ready")]

    vectors, one, ranked, info, ready = drive(create_app(clf, ServeConfig(max_wait_ms=1)), body)
    assert vectors.status_code == 200
    assert vectors.json() == {"embeddings": roundtrip(clf.embed(TEXTS).tolist())}
    assert one.json() == {"embeddings": roundtrip(clf.embed(TEXTS[0]).tolist())}
    assert ranked.json() == roundtrip(clf(TEXTS[0], LABELS))
    assert info.json()["kind"] == "embedding" and "labels" not in info.json()
    assert ready.json() == {"ready": True}


class BrokenModel:
    """Answers /v1/model, fails every call as a bug would."""

    kind, variant, max_length, hypothesis_template, providers = "nli", "fp32", 8, "{}", ["CPUExecutionProvider"]

    def scores(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/model")


def test_a_server_bug_is_a_generic_500_without_traceback(caplog):
    app = create_app(BrokenModel(), ServeConfig(max_wait_ms=0))  # type: ignore[arg-type]

    async def body(client: Any) -> tuple[Any, str]:
        answer = await client.post("/v1/classify", json={"sequences": "x", "candidate_labels": ["a"]})
        return answer, (await client.get("/metrics")).text

    answer, metrics = drive(app, body)
    assert answer.status_code == 500 and answer.json()["error"]["type"] == "internal_error"
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert 'zsl_serve_requests_total{path="/v1/classify",status="500"} 1' in metrics
    assert "secret internal detail" in caplog.text  # logged server-side


def test_concurrent_embedding_requests_merge_and_each_equals_its_call_alone():
    from test_serve_runner import WideEncoder

    clf = make(encoder=WideEncoder())
    bodies = [("/v1/classify", {"sequences": TEXTS[i % 4], "candidate_labels": LABELS[: 1 + i % 3],
                                "multi_label": i % 5 == 0}) for i in range(12)]
    bodies += [("/v1/scores", {"sequences": TEXTS[:2], "candidate_labels": "sports, music"}),
               ("/v1/embed", {"sequences": TEXTS[1:3]})]

    async def body(client: Any) -> tuple[list[Any], str]:
        answers = await asyncio.gather(*(client.post(path, json=payload) for path, payload in bodies))
        return [answer.json() for answer in answers], (await client.get("/metrics")).text

    got, metrics = drive(create_app(clf, ServeConfig(max_wait_ms=0)), body)
    expected = [roundtrip(clf(p["sequences"], p["candidate_labels"], multi_label=p["multi_label"])) for _, p in bodies[:12]]
    expected += [{"scores": roundtrip(clf.scores(TEXTS[:2], "sports, music").tolist())},
                 {"embeddings": roundtrip(clf.embed(TEXTS[1:3]).tolist())}]
    assert got == expected
    calls = re.search(r"^zsl_serve_batch_requests_count (\d+)$", metrics, re.MULTILINE)
    assert calls is not None and int(calls.group(1)) < len(bodies)  # fewer model calls than requests: some merged
