"""zsl-serve's batcher with a fake classifier: which jobs merge, how long they wait, the queue bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest

from zsl_onnx.serve.batcher import Batcher, Job, QueueFullError

pytestmark = pytest.mark.serve


class FakeModel:
    """Records every call; each text's result is its upper-case self. 'bad' texts fail the call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[Hashable, list[str]]] = []
        self.started: list[float] = []  # time.monotonic() as each call began
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, key: Hashable, works: list[list[str]]) -> list[list[str]]:
        self.started.append(time.monotonic())
        self.calls.append((key, [text for texts in works for text in texts]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if any("bad" in texts for texts in works):
            raise ValueError("bad text")
        return [[f"{key}:{text.upper()}" for text in texts] for texts in works]


def put(batcher: Batcher, key: Hashable, texts: list[str]) -> Job:
    return batcher.submit(key, texts, len(texts))


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
        jobs = [put(batcher, "k", ["a", "b"]), put(batcher, "k", ["c"]), put(batcher, "k", ["d", "e"])]
        return [await job.future for job in jobs]

    results = run(_with_batcher(model, body))
    assert results == [["k:A", "k:B"], ["k:C"], ["k:D", "k:E"]]
    assert model.calls == [("k", ["a", "b", "c", "d", "e"])]
    assert model.threads and threading.current_thread().name not in model.threads  # never on the event loop


def test_jobs_with_different_keys_never_share_a_call():
    model = FakeModel()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [put(batcher, key, [text]) for key, text in [("x", "a"), ("y", "b"), ("x", "c"), ("y", "d")]]
        return [await job.future for job in jobs]

    assert run(_with_batcher(model, body)) == [["x:A"], ["y:B"], ["x:C"], ["y:D"]]
    assert sorted(model.calls) == [("x", ["a", "c"]), ("y", ["b", "d"])]


def test_the_size_budget_splits_batches_but_never_a_job():
    model = FakeModel()

    async def body(batcher: Batcher) -> None:
        jobs = [put(batcher, "k", ["a", "b", "c"]), put(batcher, "k", ["d", "e"]), put(batcher, "k", ["f"] * 5)]
        await asyncio.gather(*(job.future for job in jobs))

    run(_with_batcher(model, body, max_batch_size=4))
    # 3 + 2 > 4: the first job runs without the second; the job of 5 is over the budget and runs alone
    assert [texts for _, texts in model.calls] == [["a", "b", "c"], ["d", "e"], ["f"] * 5]


def test_a_lone_job_runs_at_once_whatever_max_wait_says():
    model = FakeModel()

    async def lone(batcher: Batcher) -> float:
        submitted = time.monotonic()
        await put(batcher, "k", ["a"]).future
        return model.started[0] - submitted

    assert run(_with_batcher(model, lone, max_wait_s=5.0)) < 2.5  # the model was idle: no waiting for company


def test_jobs_that_arrive_during_a_call_make_the_next_call_without_waiting():
    model = FakeModel(delay=0.3)

    async def body(batcher: Batcher) -> float:
        first = put(batcher, "k", ["first"])
        while not model.started:
            await asyncio.sleep(0.01)
        later = [put(batcher, "k", [text]) for text in "abc"]
        await asyncio.gather(first.future, *(job.future for job in later))
        return model.started[1] - model.started[0]

    gap = run(_with_batcher(model, body, max_wait_s=5.0))
    assert [texts for _, texts in model.calls] == [["first"], ["a", "b", "c"]]
    assert gap < 2.5  # the second call began when the first ended, not max_wait later


def test_after_a_merged_call_an_idle_model_waits_for_as_many_texts_then_at_most_max_wait():
    model = FakeModel()

    async def body(batcher: Batcher) -> float:
        await asyncio.gather(*(put(batcher, "k", [text]).future for text in "abc"))  # one merged call of 3
        d = put(batcher, "k", ["d"])
        await asyncio.sleep(0.2)  # the model is idle, but clients that sent 3 texts are coming back
        await asyncio.gather(d.future, *(put(batcher, "k", [text]).future for text in "ef"))
        waited = time.monotonic()
        await put(batcher, "k", ["g"]).future  # 3 texts expected again; only 1 comes
        return time.monotonic() - waited

    waited = run(_with_batcher(model, body, max_wait_s=1.0))
    assert [texts for _, texts in model.calls] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert 0.5 <= waited < 10.0


def test_clients_answered_together_come_to_share_one_call():
    model = FakeModel(delay=0.2)

    async def body(batcher: Batcher) -> None:
        a1 = put(batcher, "k", ["a1"])
        while not model.started:
            await asyncio.sleep(0.01)
        b1, c1 = put(batcher, "k", ["b1"]), put(batcher, "k", ["c1"])  # wait while a1 runs
        await a1.future
        a2 = put(batcher, "k", ["a2"])  # client a is back while b1 and c1 run
        await asyncio.gather(b1.future, c1.future)
        await asyncio.sleep(0.05)  # clients b and c send again a moment after their answers
        b2 = put(batcher, "k", ["b2"])
        await asyncio.sleep(0.05)
        c2 = put(batcher, "k", ["c2"])
        await asyncio.gather(a2.future, b2.future, c2.future)

    run(_with_batcher(model, body, max_wait_s=2.0))
    assert [texts for _, texts in model.calls] == [["a1"], ["b1", "c1"], ["a2", "b2", "c2"]]


def test_a_full_batch_does_not_wait():
    model = FakeModel()

    async def full(batcher: Batcher) -> float:
        await asyncio.gather(*(put(batcher, "k", [text]).future for text in "abcd"))  # 4 texts expected next
        started = time.monotonic()
        jobs = [put(batcher, "k", ["e", "f"]), put(batcher, "k", ["g"]), put(batcher, "k", ["h", "i"])]
        await jobs[0].future  # h, i do not fit beside them: the call is as full as it can be
        batcher.cancel(jobs[2])  # left waiting for company; not this test's business
        return time.monotonic() - started

    assert run(_with_batcher(model, full, max_batch_size=4, max_wait_s=10.0)) < 5.0
    assert [texts for _, texts in model.calls][:2] == [["a", "b", "c", "d"], ["e", "f", "g"]]


def test_the_queue_is_bounded_and_refuses_beyond_it():
    model = FakeModel(delay=0.2)

    async def body(batcher: Batcher) -> tuple[int, list[Any]]:
        first = put(batcher, "k", ["running"])
        await asyncio.sleep(0.05)  # the first job is on the worker now
        waiting = [put(batcher, "k", [str(i)]) for i in range(3)]
        with pytest.raises(QueueFullError, match="--max-queue 3"):
            put(batcher, "k", ["one too many"])
        depth = batcher.depth
        return depth, [await job.future for job in [first, *waiting]]

    depth, results = run(_with_batcher(model, body, max_queue=3, max_wait_s=0.0, max_batch_size=1))
    assert depth == 3 and len(results) == 4
    assert all("one too many" not in texts for _, texts in model.calls)


def test_a_failing_merged_call_is_retried_job_by_job():
    model = FakeModel()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [put(batcher, "k", ["a"]), put(batcher, "k", ["bad"]), put(batcher, "k", ["c"])]
        return await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)

    good, bad, other = run(_with_batcher(model, body))
    assert good == ["k:A"] and other == ["k:C"] and isinstance(bad, ValueError)
    assert model.calls[0] == ("k", ["a", "bad", "c"]) and len(model.calls) == 4


def test_a_cancelled_job_is_never_run():
    model = FakeModel(delay=0.1)

    async def body(batcher: Batcher) -> Any:
        first = put(batcher, "k", ["first"])
        await asyncio.sleep(0.03)
        gone = put(batcher, "k", ["gone"])
        batcher.cancel(gone)
        kept = put(batcher, "k", ["kept"])
        return await first.future, await kept.future, gone.future.cancelled(), batcher.depth

    first, kept, cancelled, depth = run(_with_batcher(model, body, max_batch_size=1, max_wait_s=0.0))
    assert (first, kept, cancelled, depth) == (["k:FIRST"], ["k:KEPT"], True, 0)
    assert all("gone" not in texts for _, texts in model.calls)
