"""Dynamic batching: concurrent requests share one model call, and the model never idles for them
without cause.

Continuous batching: a request that finds the model idle runs at once; requests that arrive
while a call runs wait for it, and the next call takes the oldest waiting request with every
other waiting request of its merge key, up to ``max_batch_size`` texts. A lone client thus
never waits for company, and under load each call takes what arrived during the one before.

The model waits on purpose only when the last call merged requests (clients send concurrently)
and fewer texts are waiting than that call answered plus those it left waiting: then it waits
at most ``max_wait_s`` for the rest of them, counted from when the oldest waiting request arrived
or the model became free, whichever is later. Without that, clients answered together come
back one moment apart, and the first one back would run alone, the others after it, halving
every batch.

Which requests may merge, and how a merged call gives each the answer it gets alone, is the
runner's business (runner.py); this module only groups, runs on one worker thread (never on
the event loop), and hands back one result per request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batcher", "BatchObserver", "Job", "QueueFullError", "Runner"]

# runner(key, works) -> one result per work item, in order; runs on the worker thread.
Runner = Callable[[Hashable, Sequence[Any]], Sequence[Any]]
# observer(requests, texts, seconds) after every model call, on the event loop.
BatchObserver = Callable[[int, int, float], None]


class QueueFullError(Exception):
    """The bounded queue is full: the caller should answer 503 and let the client retry."""


@dataclass(eq=False)
class Job:
    """One request's work under its merge key; ``size`` counts its texts; ``future`` gets its result."""

    key: Hashable
    work: Any
    size: int
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """Queue of jobs, a dispatcher task that groups them, and the one inference thread."""

    def __init__(
        self,
        run: Runner,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        observe: BatchObserver | None = None,
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._observe = observe
        self._waiting: deque[Job] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zsl-serve-inference")
        self._task: asyncio.Task[None] | None = None
        self.busy = False  # a model call is running
        self._free_since = 0.0  # when the last call ended
        self._expected = 0  # texts worth waiting for (see _concurrency)

    @property
    def depth(self) -> int:
        """Jobs admitted and not yet started."""
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever(), name="zsl-serve-batcher")

    async def close(self) -> None:
        """Stop dispatching; jobs still waiting fail. Called after the server stopped taking requests."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._waiting:
            job = self._waiting.popleft()
            if not job.future.done():
                job.future.set_exception(QueueFullError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    def submit(self, key: Hashable, work: Any, size: int) -> Job:
        """Admit a job of ``size`` texts, or raise QueueFullError when ``max_queue`` jobs already wait."""
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError(f"{len(self._waiting)} requests are waiting (--max-queue {self.max_queue})")
        job = Job(key, work, size, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        self._wakeup.set()
        return job

    def cancel(self, job: Job) -> None:
        """Drop a job whose client left or whose deadline passed; a started job runs to its end."""
        try:
            self._waiting.remove(job)
        except ValueError:
            pass  # already started (or finished): its result will be discarded
        job.future.cancel()

    async def _dispatch_forever(self) -> None:
        while True:
            while not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._gather()
            if batch:
                self.busy = True
                try:
                    await self._execute(batch)
                finally:
                    self.busy = False
                    self._free_since = time.monotonic()
                    self._expected = self._concurrency(batch)

    def _concurrency(self, batch: list[Job]) -> int:
        """Texts worth waiting for after ``batch``: if it merged requests (clients send
        concurrently, and those just answered are likely to be back), its texts and those of
        every request still waiting; else 0 (a lone client, or requests that do not come back)."""
        if len(batch) < 2:
            return 0
        return min(self.max_batch_size, sum(job.size for job in batch) + sum(job.size for job in self._waiting))

    async def _gather(self) -> list[Job]:
        """The oldest job and those waiting with its key: at once, unless the last call merged
        requests and fewer texts than it had are here; then until they are, or the wait is over."""
        first = self._waiting[0]
        deadline = max(first.enqueued, self._free_since) + self.max_wait_s
        while True:
            if not self._waiting or self._waiting[0] is not first:
                return []  # the first job was cancelled: start over with the next one
            batch, full = self._matching(first)
            remaining = deadline - time.monotonic()
            if full or sum(job.size for job in batch) >= self._expected or remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        for job in batch:
            self._waiting.remove(job)
        return batch

    def _matching(self, first: Job) -> tuple[list[Job], bool]:
        """Waiting jobs with the first one's key, oldest first, while their texts fit the budget;
        and whether the budget is spent (a job of the key was left out, or no room is left)."""
        batch, size = [first], first.size
        for job in list(self._waiting)[1:]:
            if job.key != first.key:
                continue
            if size + job.size > self.max_batch_size:
                return batch, True
            batch.append(job)
            size += job.size
        return batch, size >= self.max_batch_size

    async def _execute(self, batch: list[Job]) -> None:
        """Run one merged call; if it fails, run each job alone so one bad request fails only itself."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, self._run, batch[0].key, [j.work for j in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the jobs, or retried one by one
            if len(batch) == 1:
                _settle(batch[0], error=exc)
            else:
                for job in batch:
                    await self._execute_alone(job)
            return
        finally:
            if self._observe is not None:
                self._observe(len(batch), sum(job.size for job in batch), time.monotonic() - started)
        for job, result in zip(batch, results):
            _settle(job, result=result)

    async def _execute_alone(self, job: Job) -> None:
        if job.future.done():
            return  # its client left while the merged call ran
        loop = asyncio.get_running_loop()
        try:
            (result,) = await loop.run_in_executor(self._executor, self._run, job.key, [job.work])
        except Exception as exc:  # noqa: BLE001 - the job's own error, answered to its client
            _settle(job, error=exc)
            return
        _settle(job, result=result)


def _settle(job: Job, *, result: Any = None, error: BaseException | None = None) -> None:
    """Hand a job its result or error, unless its client stopped waiting."""
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
