"""The one small interface every labeling backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from inference_server.metadata import ExportMetadata

RELIABLE_LEVEL = 128  # reliability >= 0.5 after the graph's round(255 * p)


@dataclass(frozen=True)
class LabelMaps:
    """Compact per-pixel outputs of the fused labeler for a batch (N x H x W, uint8 each):
    trainId label, the confidence level of the winning class
    (:mod:`segloop.confidence_levels`) and, when the export has an ELN,
    ``round(255 * P(label is right))``."""

    label: np.ndarray
    confidence: np.ndarray
    reliability: np.ndarray | None


class LabelerBackend(ABC):
    """Runs the exported labeler on uint8 RGB frames (N x H x W x 3) of the graph's input size
    (any H x W multiple of ``metadata.size_multiple`` when the export has dynamic size)."""

    name: str

    def __init__(self, metadata: ExportMetadata) -> None:
        self.metadata = metadata

    @abstractmethod
    def label(self, frames: np.ndarray) -> LabelMaps:
        """Label one batch; the batch may have any size the backend's profile allows."""

    def close(self) -> None:  # noqa: B027 - backends without native resources need nothing
        """Release native resources (device buffers, streams)."""

    def __enter__(self) -> LabelerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_frames(frames: np.ndarray, metadata: ExportMetadata) -> None:
    """Refuse a batch the graph cannot take, with the reason (not an engine error later)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames must be uint8 N x H x W x 3, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if metadata.dynamic_size:
        m = metadata.size_multiple
        if height % m or width % m:
            raise ValueError(f"frame size {height}x{width} is not a multiple of {m}")
    elif (height, width) != tuple(metadata.input_size):
        raise ValueError(
            f"frame size {height}x{width} differs from the graph input {metadata.input_size}"
        )
