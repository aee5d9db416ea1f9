"""The uint8 confidence levels: hand-computed values, the torch form, and what they buy DARS."""

import numpy as np
import pytest
import torch

from segloop.confidence_levels import decode_confidence, encode_confidence, mean_confidence
from segloop.pool_selection import BINS, level_position
from segloop.selection import ConfidenceHistogram, apply_dars, dars_thresholds
from training.confidence_levels import confidence_levels


def test_levels_hand_computed() -> None:
    # level = round(255 ln(max(1 - c, 1e-6)) / ln 1e-6): 0.99 -> 255 * 2/6, 0.9999 -> 255 * 4/6
    confidence = np.array([0.0, 0.5, 0.99, 0.9999, 1 - 1e-6, 1 - 1e-9, 1.0])
    assert encode_confidence(confidence).tolist() == [0, 13, 85, 170, 255, 255, 255]
    assert encode_confidence(confidence).dtype == np.uint8


def test_decoding_inverts_the_levels() -> None:
    assert decode_confidence(np.array([0, 85, 170, 255])) == pytest.approx(
        [0.0, 0.99, 0.9999, 1 - 1e-6]
    )
    levels = np.arange(256)
    assert (encode_confidence(decode_confidence(levels)) == levels).all()


def test_the_torch_form_matches_numpy() -> None:
    confidence = torch.rand(10_000, dtype=torch.float64) ** 0.05  # many close to 1
    expected = encode_confidence(confidence.numpy())
    got = confidence_levels(confidence.float()).numpy()
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1  # float32 rounding at .5 ties
    exact = confidence_levels(torch.tensor([0.0, 0.99, 1.0], dtype=torch.float64)).tolist()
    assert exact == [0, 85, 255]


def test_dars_ranks_confidences_the_linear_level_tied() -> None:
    """Half the pixels at 0.9995 (level 255 of round(255 c)) and half at 0.999999: a budget of
    half the pixels keeps exactly the more confident half, where the linear level tied them."""
    label = np.zeros((4, 4), np.uint8)
    confidence = np.full((4, 4), 0.9995)
    confidence[:2] = 0.999999
    assert len(set(np.round(255 * confidence).ravel())) == 1
    levels = encode_confidence(confidence)
    position = level_position(levels)  # as segloop select bins them
    hist = ConfidenceHistogram(1, BINS)
    hist.update(label, position)
    selection = dars_thresholds(hist, np.array([1.0]), alpha=0.5)
    kept = apply_dars(label, position, selection, np.random.default_rng(0)) != 255
    assert kept[:2].all() and not kept[2:].any()


def test_mean_confidence_from_the_level_histogram() -> None:
    # level 0 stands for confidence 0, level 255 for 1 - 1e-6 (the floor)
    assert mean_confidence(np.array([[0, 255]], np.uint8)) == pytest.approx((1 - 1e-6) / 2)
    levels = np.random.default_rng(0).integers(0, 256, (32, 64), dtype=np.uint8)
    assert mean_confidence(levels) == pytest.approx(decode_confidence(levels).mean(), abs=1e-12)
