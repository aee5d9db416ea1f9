"""Host set-up: torch threads and glibc keeping freed blocks (training/host.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from segloop.params import TrainParams
from training import host

# Allocates a 64 MiB block with malloc and prints how many bytes glibc holds in mmapped
# regions meanwhile (mallinfo2().hblkhd), after optionally calling keep_freed_memory().
MEASURE = """
import ctypes, sys
from training.host import c_library, keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
        ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc = c_library()
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
accepted = keep_freed_memory() if sys.argv[1] == "keep" else None
block = libc.malloc(64 << 20)
print(accepted, libc.mallinfo2().hblkhd)
libc.free(block)
"""


def _mapped_bytes_during_a_64mib_block(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(
    not hasattr(host.c_library(), "mallinfo2"), reason="needs glibc >= 2.33 (mallinfo2)"
)
def test_keeping_freed_memory_serves_large_blocks_from_the_heap() -> None:
    accepted, mapped = _mapped_bytes_during_a_64mib_block("default")
    assert accepted == "None" and mapped >= 64 << 20  # glibc's default: a 64 MiB block is mmapped
    accepted, mapped = _mapped_bytes_during_a_64mib_block("keep")
    assert accepted == "True" and mapped < 64 << 20  # now it comes from the heap


def test_configure_host_applies_threads_and_the_allocator_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(host, "keep_freed_memory", lambda: bool(calls.append(None)))
    before = torch.get_num_threads()
    try:
        host.configure_host(TrainParams(threads=1, keep_host_memory=False))
        assert torch.get_num_threads() == 1 and calls == []
        host.configure_host(TrainParams(keep_host_memory=True))
        assert calls == [None]
    finally:
        torch.set_num_threads(before)
