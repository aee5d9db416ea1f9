"""Micro-batching: concurrent requests share backend runs.

Requests enqueue one fitted frame each and await a future. One worker task takes the first
waiting frame, then gathers more until ``max_batch`` frames or ``max_wait_ms`` after the
first (it does not wait at all when no other request is in flight, so a lone caller pays no
batching delay), groups them by frame size, runs the backend in a thread (the event loop
keeps serving) and resolves each caller's future with its own row of the outputs. Beyond
``queue_limit`` waiting frames a request is refused at once (the server answers 503 with
Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from inference_server.backends.base import LabelerBackend, LabelMaps
from inference_server.server.metrics import ServerMetrics


class Overloaded(Exception):
    """More frames are waiting than the queue limit allows."""


@dataclass
class Pending:
    frame: np.ndarray
    future: asyncio.Future[LabelMaps] = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        backend: LabelerBackend,
        metrics: ServerMetrics,
        max_batch: int,
        max_wait_ms: float,
        queue_limit: int,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_limit = queue_limit
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.in_flight = 0  # requests being handled (the app counts them)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def label(self, frame: np.ndarray) -> LabelMaps:
        """This frame's maps (each H x W, batch axis removed)."""
        if self.queue.qsize() >= self.queue_limit:
            raise Overloaded
        future: asyncio.Future[LabelMaps] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Pending(frame, future))
        self.metrics.queue_depth = self.queue.qsize()
        return await future

    async def _gather(self) -> list[Pending]:
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if self.queue.empty() and self.in_flight <= len(batch):
                break  # nobody else is coming: waiting would only add latency
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        self.metrics.queue_depth = self.queue.qsize()
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            groups: dict[tuple[int, ...], list[Pending]] = defaultdict(list)
            for item in batch:
                groups[item.frame.shape].append(item)
            for items in groups.values():
                live = [item for item in items if not item.future.cancelled()]
                if not live:
                    continue
                frames = np.stack([item.frame for item in live])
                try:
                    maps = await loop.run_in_executor(None, self.backend.label, frames)
                except Exception as exc:  # a backend failure fails these callers, not the server
                    for item in live:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                self.metrics.batch_done(len(live))
                for i, item in enumerate(live):
                    if item.future.done():
                        continue
                    item.future.set_result(
                        LabelMaps(
                            maps.label[i],
                            maps.confidence[i],
                            None if maps.reliability is None else maps.reliability[i],
                        )
                    )
