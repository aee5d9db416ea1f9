"""Host (CPU) set-up shared by the torch commands: intra-op threads and glibc's allocator.

glibc serves a block larger than its mmap threshold (at most 32 MiB once its dynamic
adjustment has run) with ``mmap`` and returns it to the kernel on ``free``. A training step at
batch 8 x 128 x 256 allocates and frees tensors of that size many times (the ECOC head's
40-bit logits at full resolution are 42 MB), so every step page-faults that memory in again.
Raising the mmap and trim thresholds keeps freed blocks in the heap for the next step:
``benchmarks/step_cost.py`` counts 130-200 thousand page faults and 0.23-0.36 s of system CPU
time per combined-recipe step without this, 6 thousand and 0.01-0.02 s with it, for 2% more peak
memory (docs/RESULTS.md). The same computation runs on the same values, so results do not change
(bit-identical weights).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from segloop.params import TrainParams

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30  # blocks above 1 GiB are still mapped and unmapped
TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # free heap kept before glibc gives it back (int max)


def c_library() -> ctypes.CDLL | None:
    """The process's C library on Linux; None elsewhere or when it cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Keep freed blocks up to 1 GiB in glibc's heap instead of unmapping them. Returns
    whether glibc accepted both settings (False on other platforms and C libraries)."""
    mallopt = getattr(c_library(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def configure_host(train: TrainParams) -> None:
    """Apply ``train.threads`` (torch intra-op threads) and ``train.keep_host_memory``."""
    if train.threads:
        torch.set_num_threads(train.threads)
    if train.keep_host_memory:
        keep_freed_memory()
