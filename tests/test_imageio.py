"""PNG encoding: lossless round trips, and the row filter the fast setting asks for."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from segloop.imageio import encode_png


def _row_filters(png: bytes, row_bytes: int) -> set[int]:
    """The filter type byte of every row (PNG spec: 0 none, 1 sub, 2 up, 3 average, 4 paeth)."""
    offset, idat = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(idat)
    return {raw[i] for i in range(0, len(raw), row_bytes + 1)}


@pytest.mark.parametrize("fast", [False, True])
def test_grey_and_rgb_round_trip(fast: bool) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 20, (17, 33), dtype=np.uint8)
    rgb = rng.integers(0, 256, (17, 33, 3), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_png(grey, 1, fast), np.uint8), -1)
    assert np.array_equal(decoded, grey)
    decoded = cv2.imdecode(np.frombuffer(encode_png(rgb, 1, fast), np.uint8), -1)
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), rgb)


def test_fast_encoding_filters_every_row_with_up() -> None:
    # a vertical gradient: "up" turns every row after the first into zeros
    grey = np.repeat(np.arange(0, 240, 10, dtype=np.uint8)[:, None], 40, axis=1)
    assert _row_filters(encode_png(grey, 1, fast=True), 40) == {2}
