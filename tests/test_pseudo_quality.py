"""Pseudo-label quality against the pool's hidden truth (train.measure_pseudo_labels)."""

import json
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from segloop.datasets import Sample
from segloop.errors import DataError
from segloop.fingerprint import run_fingerprint
from segloop.params import Params
from segloop.taxonomy import CITYSCAPES, IGNORE_INDEX
from tests.conftest import make_cityscapes
from training.data import UnlabeledFrames
from training.pseudo_quality import (
    CORRECT,
    KEPT,
    VALID,
    pseudo_label_counts,
    quality,
    quality_over_history,
)


def test_counts_hand_computed() -> None:
    pseudo = torch.tensor([[[0, 1, 2, 3]]])
    kept = torch.tensor([[[True, True, False, True]]])
    truth = torch.tensor([[[0, 2, 2, IGNORE_INDEX]]])
    # valid: 3 (the ignored pixel is not); kept and valid: pixels 0, 1; correct: pixel 0
    assert pseudo_label_counts(pseudo, kept, truth) == {VALID: 3.0, KEPT: 2.0, CORRECT: 1.0}
    assert quality(3, 2, 1) == {"precision": 0.5, "coverage": pytest.approx(2 / 3)}
    assert quality(3, 0, 0) == {"precision": None, "coverage": 0.0}


def test_quality_over_history_weights_intervals_by_their_steps(tmp_path: Path) -> None:
    records = [
        {"step": 5, "loss": 1.0},  # before measuring (a run resumed with the switch on)
        {"step": 10, "loss": 1.0, VALID: 100, KEPT: 50, CORRECT: 40},  # means over 5 steps
        {"step": 10, "val_miou": 0.3},
        {"step": 20, "loss": 1.0, VALID: 100, KEPT: 100, CORRECT: 90},  # over 10 steps
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    # valid 5*100 + 10*100 = 1500, kept 250 + 1000 = 1250, correct 200 + 900 = 1100
    assert quality_over_history(path) == {
        "precision": pytest.approx(1100 / 1250),
        "coverage": pytest.approx(1250 / 1500),
        "steps": 15,
    }
    path.write_text(json.dumps(records[0]) + "\n")
    assert quality_over_history(path) is None


def test_pool_truth_follows_the_image_geometry(tmp_path: Path) -> None:
    keys = make_cityscapes(tmp_path, {"train": 2}, size=(8, 16))
    samples = [
        Sample(
            key,
            tmp_path / key,
            tmp_path
            / key.replace("leftImg8bit/", "gtFine/", 1).replace(
                "_leftImg8bit.png", "_gtFine_labelTrainIds.png"
            ),
        )
        for key in keys
    ]
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    blind = UnlabeledFrames(samples, flip)
    measured = UnlabeledFrames(
        samples, flip, taxonomy=CITYSCAPES, groups=list(range(3, 3 + len(samples)))
    )
    image, nothing, group = blind[(1, 7)]
    same_image, truth, measured_group = measured[(1, 7)]
    assert nothing.numel() == 0
    assert (group, measured_group) == (0, 4)  # one group by default; else the sample's own
    torch.testing.assert_close(image, same_image)
    mask = measured.truth[1]
    assert torch.equal(truth, torch.from_numpy(np.ascontiguousarray(mask[:, ::-1])).long())
    no_truth = [Sample(samples[0].key, samples[0].image, None)]
    with pytest.raises(DataError, match="measure_pseudo_labels needs a pool with masks"):
        UnlabeledFrames(no_truth, flip, on_bad_file="skip", taxonomy=CITYSCAPES)


def test_measuring_does_not_change_the_fingerprint(tiny_params: Params) -> None:
    train = tiny_params.train.model_copy(update={"measure_pseudo_labels": True})
    measured = tiny_params.model_copy(update={"train": train})
    assert run_fingerprint(measured) == run_fingerprint(tiny_params)
