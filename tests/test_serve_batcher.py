"""zsl-serve's batcher with a fake classifier: which jobs merge, how long they wait, the queue bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest

from zsl_onnx.serve.batcher import Batcher, QueueFullError

pytestmark = pytest.mark.serve


class FakeModel:
    """Records every call; each text's result is its upper-case self. 'bad' texts fail the call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[Hashable, list[str]]] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, key: Hashable, texts: list[str]) -> list[str]:
        self.calls.append((key, list(texts)))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if "bad" in texts:
            raise ValueError("bad text")
        return [f"{key}:{text.upper()}" for text in texts]


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def _with_batcher(model: FakeModel, body: Any, **options: Any) -> Any:
    settings = {"max_batch_size": 8, "max_wait_s": 0.05, "max_queue": 16, **options}
    batcher = Batcher(model, **settings)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_jobs_with_one_key_share_a_call_and_get_their_own_results():
    model = FakeModel()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [batcher.submit("k", ["a", "b"]), batcher.submit("k", ["c"]), batcher.submit("k", ["d", "e"])]
        return [await job.future for job in jobs]

    results = run(_with_batcher(model, body))
    assert results == [["k:A", "k:B"], ["k:C"], ["k:D", "k:E"]]
    assert model.calls == [("k", ["a", "b", "c", "d", "e"])]
    assert model.threads and threading.current_thread().name not in model.threads  # never on the event loop


def test_jobs_with_different_keys_never_share_a_call():
    model = FakeModel()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [batcher.submit(key, [text]) for key, text in [("x", "a"), ("y", "b"), ("x", "c"), ("y", "d")]]
        return [await job.future for job in jobs]

    assert run(_with_batcher(model, body)) == [["x:A"], ["y:B"], ["x:C"], ["y:D"]]
    assert sorted(model.calls) == [("x", ["a", "c"]), ("y", ["b", "d"])]


def test_the_size_budget_splits_batches_but_never_a_job():
    model = FakeModel()

    async def body(batcher: Batcher) -> None:
        jobs = [batcher.submit("k", ["a", "b", "c"]), batcher.submit("k", ["d", "e"]), batcher.submit("k", ["f"] * 5)]
        await asyncio.gather(*(job.future for job in jobs))

    run(_with_batcher(model, body, max_batch_size=4))
    # 3 + 2 > 4: the first job runs without the second; the job of 5 is over the budget and runs alone
    assert [texts for _, texts in model.calls] == [["a", "b", "c"], ["d", "e"], ["f"] * 5]


def test_a_lone_job_waits_at_most_max_wait_and_a_full_batch_does_not_wait():
    async def lone(batcher: Batcher) -> float:
        started = time.monotonic()
        await batcher.submit("k", ["a"]).future
        return time.monotonic() - started

    waited = run(_with_batcher(FakeModel(), lone, max_wait_s=0.2))
    assert 0.18 <= waited < 2.0

    async def full(batcher: Batcher) -> float:
        started = time.monotonic()
        jobs = [batcher.submit("k", ["a", "b"]), batcher.submit("k", ["c", "d"])]
        await asyncio.gather(*(job.future for job in jobs))
        return time.monotonic() - started

    assert run(_with_batcher(FakeModel(), full, max_batch_size=4, max_wait_s=10.0)) < 2.0


def test_the_queue_is_bounded_and_refuses_beyond_it():
    model = FakeModel(delay=0.2)

    async def body(batcher: Batcher) -> tuple[int, list[Any]]:
        first = batcher.submit("k", ["running"])
        await asyncio.sleep(0.05)  # the first job is on the worker now
        waiting = [batcher.submit("k", [str(i)]) for i in range(3)]
        with pytest.raises(QueueFullError, match="--max-queue 3"):
            batcher.submit("k", ["one too many"])
        depth = batcher.depth
        return depth, [await job.future for job in [first, *waiting]]

    depth, results = run(_with_batcher(model, body, max_queue=3, max_wait_s=0.0, max_batch_size=1))
    assert depth == 3 and len(results) == 4
    assert all("one too many" not in texts for _, texts in model.calls)


def test_a_failing_merged_call_is_retried_job_by_job():
    model = FakeModel()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [batcher.submit("k", ["a"]), batcher.submit("k", ["bad"]), batcher.submit("k", ["c"])]
        return await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)

    good, bad, other = run(_with_batcher(model, body))
    assert good == ["k:A"] and other == ["k:C"] and isinstance(bad, ValueError)
    assert model.calls[0] == ("k", ["a", "bad", "c"]) and len(model.calls) == 4


def test_a_cancelled_job_is_never_run():
    model = FakeModel(delay=0.1)

    async def body(batcher: Batcher) -> Any:
        first = batcher.submit("k", ["first"])
        await asyncio.sleep(0.03)
        gone = batcher.submit("k", ["gone"])
        batcher.cancel(gone)
        kept = batcher.submit("k", ["kept"])
        return await first.future, await kept.future, gone.future.cancelled(), batcher.depth

    first, kept, cancelled, depth = run(_with_batcher(model, body, max_batch_size=1, max_wait_s=0.0))
    assert (first, kept, cancelled, depth) == (["k:FIRST"], ["k:KEPT"], True, 0)
    assert all("gone" not in texts for _, texts in model.calls)
