"""Segmentation metrics from a dataset-level confusion matrix (numpy, any class count).

``conf[g, p]`` counts pixels of ground-truth class ``g`` predicted as ``p``; ignored pixels
(255) are excluded. IoU_c = TP_c / (TP_c + FP_c + FN_c); a class with an empty union (absent
from both ground truth and prediction) has an undefined IoU (NaN) and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segloop.taxonomy import IGNORE_INDEX


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """C x C int64 matrix (rows ground truth, columns prediction) over non-ignored pixels."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    keep = target != ignore_index
    t = target[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    if t.size and (t.max() >= num_classes or p.max() >= num_classes or p.min() < 0):
        raise ValueError(f"ids outside 0..{num_classes - 1} in prediction or target")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float:
    ious = iou_per_class(conf)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")


def summarize(conf: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU (None where undefined) as plain JSON types."""
    ious = iou_per_class(conf)
    return {
        "miou": mean_iou(conf),
        "pixel_accuracy": pixel_accuracy(conf),
        "per_class_iou": {
            name: (None if np.isnan(v) else float(v))
            for name, v in zip(class_names, ious, strict=True)
        },
        "pixels": int(conf.sum()),
    }
