"""Precise BatchNorm statistics (training/precise_bn.py) against hand-computed values."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segloop.fingerprint import run_fingerprint
from segloop.params import load_params
from tests.conftest import tiny_overrides
from training.data import center_crop_transform, to_tensor
from training.precise_bn import frame_batches, recompute_batchnorm


def _values(*values: float) -> torch.Tensor:
    """A batch of one-channel 1x1 frames: N x 1 x 1 x 1."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_statistics_are_the_equal_weight_average_of_batch_statistics() -> None:
    bn = nn.BatchNorm2d(1)
    bn.running_mean.fill_(7.0)
    bn.running_var.fill_(9.0)
    bn.weight.data.fill_(2.0)
    model = nn.Sequential(bn).eval()
    # batch 1: mean 2, unbiased variance ((1-2)^2 + (3-2)^2) / 1 = 2
    # batch 2: mean 6, unbiased variance (1 + 1 + 1 + 9) / 3 = 4
    count = recompute_batchnorm(model, iter([_values(1, 3), _values(5, 5, 5, 9)]))
    assert count == 2
    assert bn.running_mean.item() == pytest.approx(4.0)  # (2 + 6) / 2
    assert bn.running_var.item() == pytest.approx(3.0)  # (2 + 4) / 2
    assert int(bn.num_batches_tracked) == 2
    assert bn.momentum == 0.1 and not model.training  # restored
    assert bn.weight.item() == 2.0  # weights untouched


def test_dropout_draws_from_its_own_seed_and_leaves_the_callers_rng_alone() -> None:
    def run() -> float:
        bn = nn.BatchNorm2d(1)
        model = nn.Sequential(nn.Dropout(0.5), bn)
        recompute_batchnorm(model, iter([torch.ones(64, 1, 1, 1)]), seed=3)
        return bn.running_mean.item()

    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = run()
    assert torch.equal(torch.get_rng_state(), state)
    assert run() == first
    # Dropout(0.5) keeps some of 64 ones at 2.0 and zeroes the rest: neither all nor none.
    assert 0.0 < first < 2.0


def test_no_batches_is_an_error_that_leaves_the_statistics_alone() -> None:
    bn = nn.BatchNorm2d(1)
    bn.running_mean.fill_(5.0)
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_batchnorm(nn.Sequential(bn), iter([]))
    assert bn.running_mean.item() == 5.0


def center_crop(image: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    return center_crop_transform(crop)(image=image)["image"]


def test_center_crop_takes_the_centre_and_pads_black_where_smaller() -> None:
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    np.testing.assert_array_equal(center_crop(image, (2, 2)), image[1:3, 2:4])
    small = np.full((1, 2, 3), 200, dtype=np.uint8)
    padded = center_crop(small, (4, 3))  # 3 rows of padding: 1 above, 2 below; 1 column right
    assert padded.shape == (4, 3, 3)
    np.testing.assert_array_equal(padded[1, :2], small[0])
    assert padded[0].sum() == 0 and padded[2:].sum() == 0 and padded[:, 2].sum() == 0


def test_frame_batches_keep_order_and_normalise_like_training() -> None:
    frames = [np.full((2, 2, 3), 10 * i, dtype=np.uint8) for i in range(5)]
    batches = list(frame_batches(frames, (2, 2), 2, torch.device("cpu")))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    torch.testing.assert_close(batches[1][1], to_tensor(frames[3]))


def test_precise_bn_settings_do_not_change_the_training_fingerprint(tmp_path: Path) -> None:
    base = tiny_overrides(tmp_path)
    first = run_fingerprint(load_params(None, base))
    for change in ("methods.precise_bn.frames=8", "methods.precise_bn.enabled=false"):
        assert run_fingerprint(load_params(None, [*base, change])) == first
    assert run_fingerprint(load_params(None, [*base, "methods.unsup_weight=0.5"])) != first
