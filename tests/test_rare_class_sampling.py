"""Rare-class sampling (DAFormer Eq. 5-6): class probabilities, eligible frames, the sampler's
determinism, and the recrop toward the drawn class."""

from __future__ import annotations

import math
from pathlib import Path

import albumentations as A
import numpy as np
import pytest

from segloop.datasets import Sample
from segloop.imageio import write_png
from segloop.pool_selection import frame_class_counts
from segloop.taxonomy import CITYSCAPES, IGNORE_INDEX
from training.data import CROP_TRIES, LabeledFrames
from training.rare_class_sampling import RareClassPlan, RareClassSampler, class_probabilities


def test_frame_class_counts_skip_ignored_pixels() -> None:
    a = np.array([[0, 0, 2], [IGNORE_INDEX, 2, 2]], dtype=np.uint8)
    b = np.array([[1, IGNORE_INDEX]], dtype=np.uint8)
    assert frame_class_counts([a, b], 3).tolist() == [[2, 0, 3], [0, 1, 0]]


def test_class_probabilities_eq5_hand_computed() -> None:
    # f = (0.25, 0.25, 0.5); T = 0.5: logits 1.5, 1.5, 1.0
    p = class_probabilities(np.array([1, 1, 2]), 0.5)
    rare = 1 / (2 + math.exp(-0.5))
    assert p.tolist() == pytest.approx([rare, rare, math.exp(-0.5) * rare])
    # a low temperature all but ignores the frequent class: exp(-0.25 / 0.01)
    q = class_probabilities(np.array([1, 1, 2]), 0.01)
    assert q[2] == pytest.approx(math.exp(-25) / (2 + math.exp(-25)))


def test_plan_keeps_classes_some_frame_holds_above_min_pixels() -> None:
    counts = np.array(
        [
            [100, 5, 0, 3],  # class 1: 5 pixels, above 4
            [100, 0, 0, 4],  # class 3: 4 pixels, not above 4
            [100, 9, 0, 0],
        ]
    )
    plan = RareClassPlan(counts, temperature=1.0, min_pixels=4)
    assert plan.classes.tolist() == [0, 1]
    assert plan.left_out.tolist() == [3]  # seen, never above min_pixels; 2 is never seen
    assert [f.tolist() for f in plan.frames] == [[0, 1, 2], [0, 2]]
    # f over the eligible classes' pixels: 300 and 14 of 314
    expected = class_probabilities(np.array([300, 14]), 1.0)
    assert plan.probabilities.tolist() == pytest.approx(expected.tolist())


def test_plan_without_eligible_class_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"lower train\.rare_class_sampling\.min_pixels"):
        RareClassPlan(np.array([[3, 1]]), temperature=0.01, min_pixels=3)


def test_sampler_draws_eligible_frames_at_the_plan_probabilities() -> None:
    counts = np.array([[900, 0], [900, 50], [900, 0], [900, 0]])
    plan = RareClassPlan(counts, temperature=0.5, min_pixels=10)
    sampler = RareClassSampler(plan, batch_size=8, seed=1, steps=500)
    items = [item for batch in sampler for item in batch]
    assert all(counts[index, cls] > 10 for index, _, cls in items)
    rare_share = np.mean([cls == 1 for _, _, cls in items])
    # P(rare) = 1 / (1 + exp(-(f_rare - f_common) / T)), f = 3600 / 3650 and 50 / 3650
    expected = 1 / (1 + math.exp(-(3600 - 50) / 3650 / 0.5))
    assert rare_share == pytest.approx(expected, abs=0.03)  # 4000 draws: 4 standard errors


def test_sampler_is_a_function_of_seed_and_step() -> None:
    plan = RareClassPlan(np.array([[50, 20], [60, 0], [10, 30]]), 0.1, 5)
    a = RareClassSampler(plan, 4, seed=3, steps=6)
    b = RareClassSampler(plan, 4, seed=3, steps=6, start=3)
    assert list(a)[3:] == list(b)
    assert len(b) == 3
    assert list(RareClassSampler(plan, 4, seed=4, steps=6)) != list(a)


def test_labeled_frames_recrop_toward_the_drawn_class(tmp_path: Path) -> None:
    """Class 1 is a 2x2 block in one corner of an 8x8 frame; a 4x4 crop misses it 21 times
    in 25. With a drawn class the item is the first of the seeds seed, seed + 1, ... whose
    crop holds the class; without, the seed's crop as is."""
    mask = np.zeros((8, 8), np.uint8)
    mask[:2, :2] = 1
    write_png(tmp_path / "mask.png", mask)
    write_png(tmp_path / "image.png", np.repeat((mask * 200)[..., None], 3, axis=2))
    sample = Sample("image.png", tmp_path / "image.png", tmp_path / "mask.png")
    frames = LabeledFrames([sample], CITYSCAPES, A.Compose([A.RandomCrop(4, 4)]))

    def crop(*item: int) -> np.ndarray:
        return frames[item][1].numpy()

    misses = [s for s in range(200) if not (crop(0, s) == 1).any()]
    assert len(misses) > 100  # the plain crop usually misses the block
    recropped_hits = 0
    for seed in misses:
        hits = [k for k in range(CROP_TRIES) if (crop(0, seed + k) == 1).any()]
        # every try missing keeps the last draw
        expected = crop(0, seed + (hits[0] if hits else CROP_TRIES - 1))
        recropped = crop(0, seed, 1)
        assert (recropped == expected).all()
        recropped_hits += int((recropped == 1).any())
    assert recropped_hits > 50
