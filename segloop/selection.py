"""Pseudo-label selection between rounds (numpy, torch-free; used by training and labeling).

DARS (He et al., ICCV 2021, §3.2, Alg. 1): a global budget of ``alpha`` of all unlabeled pixels
is shared among classes in proportion to the labeled class distribution ``r_j``:
``n_j = alpha * N_pixels * r_j`` (Eq. 4). Each class gets the confidence threshold ``t_j`` at
which about ``n_j`` pixels predicted as ``j`` are at least that confident (distribution
alignment); because over-confident networks produce many ties, the pixels kept at ``t_j`` are
then randomly subsampled with ratio ``s_j = min(1, n_j / kept_j)`` (random sampling).

The paper sorts every confidence of the pool; we stream per-class confidence histograms
(``bins`` equal-width bins over [0, 1]) in one pass, so memory does not grow with the pool.
The threshold is the lower edge of the highest bin at which the cumulative count reaches
``n_j`` (or the lowest non-empty bin when the class has fewer pixels than ``n_j``, as in the
authors' code); ``kept_j`` is that cumulative count, so ties within the threshold bin are
resolved by the random sampling exactly as the paper resolves exact ties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segloop.taxonomy import IGNORE_INDEX


def class_prior(label_histogram: np.ndarray) -> np.ndarray:
    """Labeled pixel-class ratios ``r_j`` over valid pixels."""
    counts = np.asarray(label_histogram, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("the labeled set has no valid pixels")
    return counts / total


class ConfidenceHistogram:
    """Per-class histograms of max-softmax confidence, accumulated frame by frame."""

    def __init__(self, num_classes: int, bins: int = 1000) -> None:
        self.num_classes, self.bins = num_classes, bins
        self.counts = np.zeros((num_classes, bins), dtype=np.int64)
        self.pixels = 0

    def bin_index(self, confidence: np.ndarray) -> np.ndarray:
        return np.minimum((confidence * self.bins).astype(np.int64), self.bins - 1)

    def update(self, label: np.ndarray, confidence: np.ndarray) -> None:
        """Add one frame: argmax labels (uint8) and confidences in [0, 1]."""
        valid = label != IGNORE_INDEX
        flat = label[valid].astype(np.int64) * self.bins + self.bin_index(confidence[valid])
        self.counts += np.bincount(flat, minlength=self.num_classes * self.bins).reshape(
            self.num_classes, self.bins
        )
        self.pixels += int(label.size)


@dataclass(frozen=True)
class DarsSelection:
    """Per-class thresholds ``t_j`` (bin lower edges) and sampling ratios ``s_j``."""

    thresholds: np.ndarray
    ratios: np.ndarray
    targets: np.ndarray
    kept: np.ndarray
    bins: int


def dars_thresholds(hist: ConfidenceHistogram, prior: np.ndarray, alpha: float) -> DarsSelection:
    """Distribution alignment over the whole pool (Eq. 4 and Alg. 1)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if len(prior) != hist.num_classes:
        raise ValueError("prior and histogram disagree on the number of classes")
    targets = alpha * hist.pixels * np.asarray(prior, dtype=np.float64)
    thresholds = np.ones(hist.num_classes)
    kept = np.zeros(hist.num_classes, dtype=np.int64)
    for j in range(hist.num_classes):
        cumulative = np.cumsum(hist.counts[j, ::-1])[::-1]  # pixels with confidence >= edge b
        if cumulative[0] == 0 or targets[j] <= 0:
            continue  # class never predicted, or absent from the labeled set: keep none
        reached = np.flatnonzero(cumulative >= targets[j])
        b = int(reached[-1]) if reached.size else int(np.flatnonzero(hist.counts[j])[0])
        thresholds[j] = b / hist.bins
        kept[j] = cumulative[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(kept > 0, np.minimum(1.0, targets / np.maximum(kept, 1)), 0.0)
    return DarsSelection(thresholds, ratios, targets, kept, hist.bins)


def apply_dars(
    label: np.ndarray, confidence: np.ndarray, selection: DarsSelection, rng: np.random.Generator
) -> np.ndarray:
    """One frame's pseudo-label: keep pixels at or above their class threshold, then drop a
    random ``1 - s_j`` share of each class's kept pixels (per image, as the authors' code)."""
    out = label.copy()
    valid = out != IGNORE_INDEX
    classes = out[valid].astype(np.int64)
    bins = selection.bins
    conf_bin = np.minimum((confidence[valid] * bins).astype(np.int64), bins - 1)
    threshold_bin = np.round(selection.thresholds * bins).astype(np.int64)
    keep = conf_bin >= threshold_bin[classes]
    flat = np.flatnonzero(valid)
    out.flat[flat[~keep]] = IGNORE_INDEX
    for j in np.unique(classes[keep]):
        idx = flat[keep & (classes == j)]
        drop = int(len(idx) - len(idx) * selection.ratios[j])
        if drop > 0:
            out.flat[rng.choice(idx, size=drop, replace=False)] = IGNORE_INDEX
    return out


def reliability_mask(reliability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """ELN selection: pixels whose predicted probability of being correct exceeds ``threshold``
    (ELN Eq. 9 rounds sigmoid(B), i.e. keeps sigmoid(B) > 0.5)."""
    return reliability > threshold


def select_pseudo_label(
    label: np.ndarray,
    confidence: np.ndarray,
    reliability: np.ndarray | None,
    selection: DarsSelection,
    rng: np.random.Generator,
    reliability_threshold: float = 0.5,
) -> np.ndarray:
    """The next round's pseudo-label of one frame: DARS, then unreliable pixels set to ignore."""
    out = apply_dars(label, confidence, selection, rng)
    if reliability is not None:
        out[~reliability_mask(reliability, reliability_threshold)] = IGNORE_INDEX
    return out
