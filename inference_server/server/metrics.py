"""Prometheus text exposition (format 0.0.4) for the server's few metrics, without a client
library: counters, one gauge, and histograms with cumulative buckets."""

from __future__ import annotations

import threading
from collections import Counter


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for bound, count in zip(self.buckets, self.counts, strict=True):
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {count}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.total}')
        lines += [f"{self.name}_sum {self.sum:.6f}", f"{self.name}_count {self.total}"]
        return lines


class ServerMetrics:
    """Request latency, batch size, queue depth, responses by status, images processed."""

    def __init__(self, max_batch: int) -> None:
        self._lock = threading.Lock()
        self.latency = Histogram(
            "segloop_request_latency_seconds",
            "Time from request to response for /v1/segment.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.batch = Histogram(
            "segloop_batch_size",
            "Frames per backend run.",
            tuple(float(b) for b in range(1, max_batch + 1)),
        )
        self.responses: Counter[int] = Counter()
        self.images = 0
        self.queue_depth = 0

    def request_done(self, status: int, seconds: float | None) -> None:
        with self._lock:
            self.responses[status] += 1
            if seconds is not None:
                self.latency.observe(seconds)

    def batch_done(self, size: int) -> None:
        with self._lock:
            self.batch.observe(size)
            self.images += size

    def render(self) -> str:
        with self._lock:
            lines = [*self.latency.render(), *self.batch.render()]
            lines += [
                "# HELP segloop_queue_depth Frames waiting for the backend.",
                "# TYPE segloop_queue_depth gauge",
                f"segloop_queue_depth {self.queue_depth}",
                "# HELP segloop_responses_total Responses by HTTP status code.",
                "# TYPE segloop_responses_total counter",
            ]
            lines += [
                f'segloop_responses_total{{code="{c}"}} {n}'
                for c, n in sorted(self.responses.items())
            ]
            lines += [
                "# HELP segloop_images_processed_total Frames labeled.",
                "# TYPE segloop_images_processed_total counter",
                f"segloop_images_processed_total {self.images}",
            ]
        return "\n".join(lines) + "\n"
