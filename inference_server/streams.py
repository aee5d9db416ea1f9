"""Inference streams for ``segloop label``: several batches labeled at once, each by its own
backend instance on its own thread.

On ``ort-cpu`` the inference threads are split between the streams: each stream is its own
ONNX Runtime session with ``threads // streams`` intra-op threads. One session with every
core has a barrier after each operator; when a decoder or PNG writer takes a core from one
of its threads, the others spin at the barrier until it comes back. Two sessions with one
thread each have no barrier between them, so the cycles that decoding and writing take cost
only the stream they preempt. Measured on a 2-core VM (dev-cpu-zen5, docs/BENCHMARKS.md):
two 1-thread streams match one 2-thread session on the model alone (0.99-1.02x) and label
11-14% faster in the full pipeline. Other backends default to one stream: a GPU backend
already leaves the host cores to decoding and writing, and each extra stream holds another
engine in device memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from inference_server.backends import LabelerBackend, open_labeler
from inference_server.metadata import ExportMetadata

CPU_STREAMS = 2  # the default on ort-cpu; every other backend defaults to 1


def default_streams(backend: str) -> int:
    """Streams used when the params leave ``streams`` unset."""
    return CPU_STREAMS if backend == "ort-cpu" else 1


def available_cpus() -> int:
    """The logical CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_stream(backend: str, threads: int | None, streams: int) -> int | None:
    """Intra-op threads of each stream's session: ``threads`` (default: every CPU the process
    may use) split evenly, at least one each. One stream with ``threads`` unset keeps ONNX
    Runtime's own default (its physical cores); the GPU backends take ``threads`` as given."""
    if backend != "ort-cpu" or (streams == 1 and threads is None):
        return threads
    return max(1, (threads or available_cpus()) // streams)


@contextmanager
def open_streams(
    export_dir: Path,
    backend: str,
    threads: int | None,
    streams: int | None,
    metadata: ExportMetadata,
    spin: bool = True,
) -> Iterator[list[LabelerBackend]]:
    """``streams`` (default :func:`default_streams`) open labelers, closed on exit; ``spin``
    as in :func:`~inference_server.backends.open_labeler`."""
    count = streams or default_streams(backend)
    per_stream = threads_per_stream(backend, threads, count)
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                open_labeler(export_dir, backend, per_stream, metadata=metadata, spin=spin)
            )
            for _ in range(count)
        ]
