"""Ordered, bounded thread-pool map for per-frame I/O work (PNG decode/encode release the GIL)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One thread per core: the work is decode/encode bound, not waiting on disk."""
    return max(1, os.cpu_count() or 1)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` run on ``workers`` threads, yielding results in input order.

    At most ``window`` calls (default ``4 * workers``) are in flight or waiting to be consumed,
    so a slow consumer never makes the pool hold the whole dataset in memory (unlike
    ``Executor.map``, which submits every item at once). ``workers <= 1`` runs inline. An
    exception raised by ``fn`` surfaces from the iterator at that item's position.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    limit = window or 4 * workers
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
