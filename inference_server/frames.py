"""Fitting frames to a graph's input and maps back to the frame (torch-free).

A graph exported at a fixed H x W takes frames resized to it (bilinear); its label-like maps
come back at the frame's own size by nearest-neighbour resizing, so a label map is never
blended between classes. A dynamic-size graph takes any frame whose sides are multiples of
its ``size_multiple``; other frames are padded at the bottom/right by edge replication and
the maps cropped back.
"""

from __future__ import annotations

import cv2
import numpy as np

from inference_server.metadata import ExportMetadata


def graph_size(metadata: ExportMetadata, frame_hw: tuple[int, int]) -> tuple[int, int]:
    """The H x W a frame of size ``frame_hw`` is fed at."""
    if not metadata.dynamic_size:
        return (int(metadata.input_size[0]), int(metadata.input_size[1]))
    m = metadata.size_multiple
    return (-(-frame_hw[0] // m) * m, -(-frame_hw[1] // m) * m)


def fit_frame(image: np.ndarray, metadata: ExportMetadata) -> np.ndarray:
    """An H x W x 3 uint8 RGB frame in the graph's input size."""
    height, width = image.shape[:2]
    target = graph_size(metadata, (height, width))
    if (height, width) == target:
        return image
    if metadata.dynamic_size:
        return cv2.copyMakeBorder(
            image, 0, target[0] - height, 0, target[1] - width, cv2.BORDER_REPLICATE
        )
    return cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)


def restore_map(
    values: np.ndarray, frame_hw: tuple[int, int], metadata: ExportMetadata
) -> np.ndarray:
    """A graph-size map back at the frame's size (nearest neighbour, or a crop of padding)."""
    if values.shape[:2] == frame_hw:
        return values
    if metadata.dynamic_size:
        return values[: frame_hw[0], : frame_hw[1]]
    return cv2.resize(values, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_NEAREST)
