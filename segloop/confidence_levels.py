"""How a confidence in [0, 1] is stored as a uint8 level (the ``confidence/`` maps).

``level = round(255 * ln(max(1 - c, FLOOR)) / ln(FLOOR))``, ``FLOOR = 1e-6``: the level is
linear in ``-ln(1 - c)``, so the resolution sits where a trained model's confidences pile up
(0.5 -> 13, 0.9 -> 43, 0.99 -> 85, 0.9999 -> 170, 1 - 1e-6 and above -> 255).
Decoding inverts it: ``c = 1 - FLOOR ** (level / 255)``.

Why not ``round(255 * c)``: DARS ranks pool pixels by confidence, and with the linear level
54-55% of the pool's pixels shared the top level (c >= 0.998) for both the softmax and the ECOC
warm models of the ablation, so DARS chose among them at random. With this encoding 0.7%
(softmax) and 12% (ECOC) of the pixels are at 255, and the kept pixels went from 98.9% to 99.4%
correct (softmax) and from 97.7% to 98.9% (ECOC) before the ELN mask (docs/RESULTS.md,
``benchmarks/confidence_levels.py``).

The selection itself only needs the order of levels; values are decoded where a confidence is
reported (thresholds, mean confidence of a frame).
"""

from __future__ import annotations

import math

import numpy as np

FLOOR = 1e-6  # 1 - c at and below which the level is 255
LEVELS = 255
LOG_FLOOR = math.log(FLOOR)
# Names this encoding where stored maps record how they were written (segloop predict's stamp).
ENCODING = f"uint8 levels linear in -ln(1 - c), floor {FLOOR:g}"


def encode_confidence(confidence: np.ndarray) -> np.ndarray:
    """Confidences in [0, 1] -> uint8 levels (the formula above)."""
    complement = np.maximum(1.0 - np.asarray(confidence, dtype=np.float64), FLOOR)
    return np.round(LEVELS * np.log(complement) / LOG_FLOOR).astype(np.uint8)


def decode_confidence(levels: np.ndarray | int) -> np.ndarray:
    """uint8 levels -> the confidence each level stands for, ``1 - FLOOR ** (level / 255)``."""
    return 1.0 - np.power(FLOOR, np.asarray(levels, dtype=np.float64) / LEVELS)


# The confidence each level stands for, so a map's mean confidence is its level histogram
# times this table (a 256-bin count instead of a float power per pixel).
LEVEL_CONFIDENCE = decode_confidence(np.arange(LEVELS + 1))


def mean_confidence(levels: np.ndarray) -> float:
    """Mean of :func:`decode_confidence` over a uint8 map of levels, from its histogram. (An
    elementwise product, not ``@``: a BLAS dot product wakes OpenBLAS's threads, which then
    spin on the cores a labeling model needs; ``perf`` showed 0.6% of a labeling run in
    them.)"""
    counts = np.bincount(levels.ravel(), minlength=LEVELS + 1)
    return float((counts * LEVEL_CONFIDENCE).sum()) / max(levels.size, 1)
