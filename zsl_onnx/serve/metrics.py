"""Prometheus text exposition, written by hand: counters, one gauge and a few histograms.

All updates happen on the event loop, so nothing here needs a lock.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["Histogram", "Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus histograms report them."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help_text, self.buckets = name, help_text, tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            lines.append(f'{self.name}_bucket{{le="{le}"}} {running}')
        lines += [f"{self.name}_sum {_number(self.total)}", f"{self.name}_count {running}"]
        return lines


class Metrics:
    """What /metrics shows: requests by path and status, queue depth, batch sizes and latencies."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0, busy: Callable[[], bool] = lambda: False) -> None:
        self.queue_depth = queue_depth
        self.busy = busy
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency = Histogram("zsl_serve_request_seconds", "Time from request to response.", LATENCY_BUCKETS)
        self.batch_texts = Histogram("zsl_serve_batch_texts", "Texts per model call.", SIZE_BUCKETS)
        self.batch_requests = Histogram("zsl_serve_batch_requests", "Requests merged into one model call.", SIZE_BUCKETS)
        self.inference = Histogram("zsl_serve_inference_seconds", "Time of one model call.", LATENCY_BUCKETS)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] += 1
        self.latency.observe(seconds)

    def observe_batch(self, requests: int, texts: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)
        self.inference.observe(seconds)

    def render(self) -> str:
        lines = ["# HELP zsl_serve_requests_total Requests answered, by path and status.",
                 "# TYPE zsl_serve_requests_total counter"]
        for (path, status), count in sorted(self.requests.items()):
            lines.append(f'zsl_serve_requests_total{{path="{path}",status="{status}"}} {count}')
        lines += ["# HELP zsl_serve_errors_total Requests answered with a 4xx or 5xx status, by status.",
                  "# TYPE zsl_serve_errors_total counter"]
        errors: Counter[int] = Counter()
        for (_, status), count in self.requests.items():
            if status >= 400:
                errors[status] += count
        lines += [f'zsl_serve_errors_total{{status="{status}"}} {count}' for status, count in sorted(errors.items())]
        lines += ["# HELP zsl_serve_queue_depth Requests admitted and waiting for the model.",
                  "# TYPE zsl_serve_queue_depth gauge", f"zsl_serve_queue_depth {self.queue_depth()}",
                  "# HELP zsl_serve_model_busy 1 while a model call runs.",
                  "# TYPE zsl_serve_model_busy gauge", f"zsl_serve_model_busy {int(self.busy())}"]
        for histogram in (self.latency, self.batch_requests, self.batch_texts, self.inference):
            lines += histogram.render()
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return repr(float(value))
