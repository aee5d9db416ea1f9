"""The torch form of :mod:`segloop.confidence_levels`, for ``labeler.onnx`` and ``segloop
predict``: elementwise Sub, Max, Log, Mul and Round, so it exports to ONNX as written."""

from __future__ import annotations

import torch

from segloop.confidence_levels import FLOOR, LEVELS, LOG_FLOOR


def confidence_levels(confidence: torch.Tensor) -> torch.Tensor:
    """Confidences in [0, 1] -> uint8 levels, ``round(255 * ln(max(1 - c, 1e-6)) / ln 1e-6)``."""
    complement = torch.clamp(1.0 - confidence, min=FLOOR)
    return torch.round(torch.log(complement) * (LEVELS / LOG_FLOOR)).to(torch.uint8)
