"""DARS thresholds and sampling on hand-built histograms (He et al. 2021, Eq. 4, Alg. 1)."""

import numpy as np
import pytest

from segloop.selection import (
    ConfidenceHistogram,
    apply_dars,
    class_prior,
    dars_thresholds,
    select_pseudo_label,
)


def _hist(frames: list[tuple[np.ndarray, np.ndarray]], classes: int, bins: int = 10):
    hist = ConfidenceHistogram(classes, bins)
    for label, conf in frames:
        hist.update(label, conf)
    return hist


def test_histogram_bins_and_pixel_count() -> None:
    label = np.array([[0, 0, 1, 255]], dtype=np.uint8)
    conf = np.array([[0.05, 1.0, 0.55, 0.9]])
    hist = _hist([(label, conf)], 2)
    assert hist.counts[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # 1.0 lands in the top bin
    assert hist.counts[1, 5] == 1
    assert hist.pixels == 4  # the budget counts every pixel of the pool, ignored ones included


def test_thresholds_hit_each_class_budget() -> None:
    # 100 pixels: 60 predicted class 0 (conf 0.95), 30 class 1 (conf 0.1..0.39, 10 bins), 10
    # class 2 at conf 0.5. Prior 0.5 / 0.3 / 0.2, alpha 0.2 -> targets 10 / 6 / 4 pixels.
    label = np.array([0] * 60 + [1] * 30 + [2] * 10, dtype=np.uint8)[None]
    conf = np.array([0.95] * 60 + [0.1 + 0.01 * (i % 30) for i in range(30)] + [0.5] * 10)[None]
    hist = _hist([(label, conf)], 3, bins=100)
    sel = dars_thresholds(hist, np.array([0.5, 0.3, 0.2]), alpha=0.2)
    assert sel.targets.tolist() == pytest.approx([10, 6, 4])
    # class 0: all 60 tie in bin 95 -> threshold 0.95, keep 60, sample 10/60
    assert sel.thresholds[0] == pytest.approx(0.95) and sel.kept[0] == 60
    assert sel.ratios[0] == pytest.approx(10 / 60)
    # class 1: one pixel per bin 10..39; the top 6 are bins 34..39 -> threshold 0.34, ratio 1
    assert sel.thresholds[1] == pytest.approx(0.34) and sel.kept[1] == 6
    assert sel.ratios[1] == pytest.approx(1.0)
    # class 2: 10 ties at 0.5 -> keep 10, sample 4/10
    assert sel.kept[2] == 10 and sel.ratios[2] == pytest.approx(0.4)
    out = apply_dars(label, conf, sel, np.random.default_rng(0))
    counts = np.bincount(out[out != 255], minlength=3)
    assert counts.tolist() == [10, 6, 4]


def test_class_with_fewer_pixels_than_its_budget_keeps_all() -> None:
    label = np.array([[0, 0, 0, 1]], dtype=np.uint8)
    conf = np.array([[0.9, 0.9, 0.9, 0.3]])
    sel = dars_thresholds(_hist([(label, conf)], 2), np.array([0.5, 0.5]), alpha=1.0)
    assert sel.thresholds[1] == pytest.approx(0.3) and sel.ratios[1] == 1.0
    assert sel.ratios[0] == pytest.approx(2 / 3)


def test_unpredicted_or_unlabeled_classes_keep_nothing() -> None:
    label = np.array([[0, 1]], dtype=np.uint8)
    conf = np.array([[0.9, 0.9]])
    sel = dars_thresholds(_hist([(label, conf)], 3), np.array([1.0, 0.0, 0.0]), alpha=0.5)
    assert sel.ratios[1] == 0.0 and sel.ratios[2] == 0.0
    out = apply_dars(label, conf, sel, np.random.default_rng(0))
    assert out.tolist() == [[0, 255]]


def test_random_sampling_is_random_among_ties() -> None:
    label = np.zeros((1, 1000), dtype=np.uint8)
    conf = np.ones((1, 1000))
    sel = dars_thresholds(_hist([(label, conf)], 1), np.array([1.0]), alpha=0.5)
    a = apply_dars(label, conf, sel, np.random.default_rng(0))
    b = apply_dars(label, conf, sel, np.random.default_rng(1))
    assert (a == 0).sum() == (b == 0).sum() == 500
    assert not np.array_equal(a, b)
    kept = np.flatnonzero(a[0] == 0)
    assert kept.min() < 100 and kept.max() > 900  # spread over the frame, not the first 500


def test_reliability_sets_unreliable_pixels_to_ignore() -> None:
    label = np.array([[1, 1, 1]], dtype=np.uint8)
    conf = np.ones((1, 3))
    sel = dars_thresholds(_hist([(label, conf)], 2), np.array([0.0, 1.0]), alpha=1.0)
    out = select_pseudo_label(
        label, conf, np.array([[0.9, 0.5, 0.2]]), sel, np.random.default_rng(0)
    )
    assert out.tolist() == [[1, 255, 255]]


def test_prior_and_alpha_validation() -> None:
    assert class_prior(np.array([1, 3])).tolist() == [0.25, 0.75]
    with pytest.raises(ValueError):
        class_prior(np.zeros(3))
    with pytest.raises(ValueError):
        dars_thresholds(ConfidenceHistogram(2), np.array([0.5, 0.5]), alpha=0.0)
