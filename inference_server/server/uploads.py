"""Turning an uploaded body into an RGB frame, refusing bad input with the right status.

Sizes are checked from the PNG/JPEG header before decoding, so an image that would decode to
too many pixels is refused without allocating it. Grayscale, RGBA and 16-bit PNGs are
converted to 8-bit RGB.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
RAW_TYPES = ("image/png", "image/jpeg", "application/octet-stream")


class UploadError(Exception):
    """A client error: HTTP ``status`` and a message for the JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise UploadError(400, "truncated PNG (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise UploadError(400, "corrupt JPEG (bad marker)")
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return height, width
        i += 2 + length
    raise UploadError(400, "truncated JPEG (no frame header)")


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the header; 400 when the body is neither PNG nor JPEG."""
    if data.startswith(PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(JPEG_SIGNATURE):
        return _jpeg_size(data)
    raise UploadError(400, "not a PNG or JPEG image")


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """H x W x 3 uint8 RGB, or an :class:`UploadError` (400 unreadable, 413 too large)."""
    height, width = image_size(data)
    if height * width > max_pixels:
        raise UploadError(413, f"image of {width}x{height} pixels exceeds {max_pixels} pixels")
    if height == 0 or width == 0:
        raise UploadError(400, "image has no pixels")
    if data.startswith(PNG_SIGNATURE) and not data.rstrip(b"\0").endswith(b"IEND\xaeB`\x82"):
        raise UploadError(400, "truncated PNG (no IEND chunk)")
    if data.startswith(JPEG_SIGNATURE) and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise UploadError(400, "truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UploadError(400, "the image could not be decoded (corrupt)")
    if image.dtype == np.uint16:
        image = np.right_shift(image, 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UploadError(400, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise UploadError(400, f"unsupported channel count {image.shape[2]}")
