"""Dynamic batching: concurrent requests that ask the same question run as one model call.

Requests are merged only when they share a key (endpoint, candidate labels, template,
multi-label): then one call over all their texts gives each text the result it gets alone,
because the runtime scores each row independently of the rows beside it. The first request
of a batch waits at most ``max_wait_s`` (counted from its arrival) for others with its key;
inference runs on one worker thread, never on the event loop, one batch at a time.
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

# runner(key, texts) -> one result per text, in order; runs on the worker thread.
Runner = Callable[[Hashable, list[str]], Sequence[Any]]
# observer(requests, texts, seconds) after every model call, on the event loop.
BatchObserver = Callable[[int, int, float], None]


class QueueFullError(Exception):
    """The bounded queue is full: the caller should answer 503 and let the client retry."""


@dataclass(eq=False)
class Job:
    """One request's texts under its merge key; ``future`` gets its list of per-text results."""

    key: Hashable
    texts: list[str]
    future: asyncio.Future[list[Any]]
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

    def submit(self, key: Hashable, texts: list[str]) -> Job:
        """Admit a job, or raise QueueFullError when ``max_queue`` jobs already wait."""
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError(f"{len(self._waiting)} requests are waiting (--max-queue {self.max_queue})")
        job = Job(key, texts, asyncio.get_running_loop().create_future())
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

    async def _gather(self) -> list[Job]:
        """The first job and those waiting with its key, once the budget is met or its wait is over."""
        first = self._waiting[0]
        deadline = first.enqueued + self.max_wait_s
        while True:
            if not self._waiting or self._waiting[0] is not first:
                return []  # the first job was cancelled: start over with the next one
            batch = self._matching(first)
            remaining = deadline - time.monotonic()
            if sum(len(job.texts) for job in batch) >= self.max_batch_size or remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        for job in batch:
            self._waiting.remove(job)
        return batch

    def _matching(self, first: Job) -> list[Job]:
        """Waiting jobs with the first one's key, oldest first, while their texts fit the budget."""
        batch, size = [first], len(first.texts)
        for job in list(self._waiting)[1:]:
            if job.key != first.key:
                continue
            if size + len(job.texts) > self.max_batch_size:
                break
            batch.append(job)
            size += len(job.texts)
        return batch

    async def _execute(self, batch: list[Job]) -> None:
        """Run one merged call; if it fails, run each job alone so one bad request fails only itself."""
        loop = asyncio.get_running_loop()
        texts = [text for job in batch for text in job.texts]
        started = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, self._run, batch[0].key, texts)
        except Exception as exc:  # noqa: BLE001 - handed to the jobs, or retried one by one
            if len(batch) == 1:
                _settle(batch[0], error=exc)
            else:
                for job in batch:
                    await self._execute_alone(job)
            return
        finally:
            if self._observe is not None:
                self._observe(len(batch), len(texts), time.monotonic() - started)
        offset = 0
        for job in batch:
            _settle(job, results=list(results[offset : offset + len(job.texts)]))
            offset += len(job.texts)

    async def _execute_alone(self, job: Job) -> None:
        if job.future.done():
            return  # its client left while the merged call ran
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._run, job.key, job.texts)
        except Exception as exc:  # noqa: BLE001 - the job's own error, answered to its client
            _settle(job, error=exc)
            return
        _settle(job, results=list(results))


def _settle(job: Job, *, results: list[Any] | None = None, error: BaseException | None = None) -> None:
    """Hand a job its results or error, unless its client stopped waiting."""
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(results if results is not None else [])
