"""Dataset layouts, frame discovery and validated reading (numpy + OpenCV, no torch).

Two layouts share one reader:

- ``cityscapes``: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` with masks
  ``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (or ``_labelIds.png``, mapped to
  trainIds with the official table).
- ``folders``: ``images/[<split>/]<name>.<ext>`` with masks ``masks/[<split>/]<name>.png``.

Every bad input raises :class:`~segloop.errors.DataError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from segloop.errors import DataError
from segloop.taxonomy import Taxonomy, labelids_to_trainids_lut

Layout = Literal["cityscapes", "folders"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
PNG_END = b"IEND\xaeB`\x82"
JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class Sample:
    """One frame: ``key`` is the image path relative to the dataset root (POSIX)."""

    key: str
    image: Path
    mask: Path | None


def _cityscapes_mask(root: Path, key: str) -> Path | None:
    parts = Path(key).parts
    if len(parts) < 4 or parts[0] != "leftImg8bit" or not key.endswith("_leftImg8bit.png"):
        raise DataError(f"{root / key}: not a Cityscapes leftImg8bit path")
    stem = parts[-1][: -len("_leftImg8bit.png")]
    folder = root.joinpath("gtFine", *parts[1:-1])
    for suffix in ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _folders_mask(root: Path, key: str) -> Path | None:
    parts = Path(key).parts
    candidate = root.joinpath("masks", *parts[1:]).with_suffix(".png")
    return candidate if candidate.exists() else None


def sample_for_key(root: Path, layout: Layout, key: str, with_mask: bool = True) -> Sample:
    """Rebuild a sample from its key; ``with_mask=False`` hides the ground truth."""
    mask = None
    if with_mask:
        mask = _cityscapes_mask(root, key) if layout == "cityscapes" else _folders_mask(root, key)
    return Sample(key=key, image=root / key, mask=mask)


def image_dir(root: Path, layout: Layout, split: str) -> Path | None:
    """The folder holding a split's images, or None where the layout has no such split."""
    base = root / ("leftImg8bit" if layout == "cityscapes" else "images")
    if (base / split).is_dir():
        return base / split
    if layout == "folders" and split == "train" and base.is_dir():
        return base
    return None


def discover(root: Path, layout: Layout, split: str) -> list[Sample]:
    """All frames of a split, sorted by key; masks where they exist."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    folder = image_dir(root, layout, split)
    if folder is None:
        return []
    if layout == "cityscapes":
        paths = folder.rglob("*_leftImg8bit.png")
    else:
        paths = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if folder == root / "images":  # unsplit folders layout: skip split subfolders
            paths = (p for p in paths if p.relative_to(folder).parts[0] not in ("train", "val"))
    keys = sorted(p.relative_to(root).as_posix() for p in paths)
    return [sample_for_key(root, layout, key) for key in keys]


def _check_complete(path: Path, data: bytes) -> None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and not data.rstrip(b"\x00").endswith(PNG_END):
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(JPEG_END):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")


def _decode(path: Path, what: str) -> np.ndarray:
    """Read and decode a file as stored (depth and channels unchanged), or raise DataError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    _check_complete(path, data)
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(f"{path}: not a decodable {what}")
    return array


def read_image(path: Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB; 16-bit, grey and alpha inputs are converted."""
    image = _decode(path, "image")
    if image.dtype == np.uint16:
        image = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, taxonomy: Taxonomy, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label map as HxW uint8 train ids, validating size and ids.

    ``*_labelIds.png`` files are mapped to train ids with the official Cityscapes table.
    """
    mask = _decode(path, "mask")
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(
            f"{path}: a mask must be single-channel 8-bit, got {mask.dtype} with shape {mask.shape}"
        )
    if path.name.endswith("_labelIds.png"):
        mask = labelids_to_trainids_lut()[mask]
    if shape is not None and mask.shape != shape:
        raise DataError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{shape[1]}x{shape[0]}"
        )
    valid = (mask < taxonomy.num_classes) | (mask == taxonomy.ignore_index)
    if not valid.all():
        bad = sorted(set(np.unique(mask[~valid]).tolist()))
        raise DataError(
            f"{path}: ids {bad[:10]} are outside the {taxonomy.name} taxonomy "
            f"(0..{taxonomy.num_classes - 1}, {taxonomy.ignore_index} = ignore)"
        )
    return mask


def read_pair(sample: Sample, taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """Image and validated mask of a labeled sample."""
    if sample.mask is None:
        raise DataError(f"{sample.image}: no mask found for this labeled frame")
    image = read_image(sample.image)
    return image, read_mask(sample.mask, taxonomy, image.shape[:2])
