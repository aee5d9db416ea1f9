from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from segloop.datasets import discover
from segloop.taxonomy import Taxonomy
from tests.conftest import make_cityscapes, write_gray
from training.evaluation import _starts, evaluate, sliding_window_probs


def test_tile_starts_cover_the_frame_flush_with_the_border() -> None:
    assert _starts(10, 4, 3) == [0, 3, 6]
    assert _starts(4, 4, 3) == [0]
    assert _starts(3, 4, 3) == [0]
    assert _starts(11, 4, 4) == [0, 4, 7]


def test_sliding_window_equals_whole_frame_for_a_pointwise_model() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 7, 1).eval()  # per-pixel: tiling cannot change its output
    image = torch.randn(1, 3, 37, 53)
    whole = torch.softmax(model(image), dim=1)
    tiled = sliding_window_probs(model, image, (16, 24), overlap=0.5)
    assert tiled.shape == (1, 7, 37, 53)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


class ConstantModel(nn.Module):
    """Predicts class ``k`` everywhere, for any number of classes."""

    def __init__(self, num_classes: int, k: int) -> None:
        super().__init__()
        self.num_classes, self.k = num_classes, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.num_classes, *x.shape[2:])
        out[:, self.k] = 1.0
        return out


@pytest.mark.parametrize("window", [None, (8, 8)])
def test_evaluate_confusion_per_condition(tmp_path: Path, window: tuple[int, int] | None) -> None:
    keys = make_cityscapes(tmp_path, {"val": 2}, size=(16, 32))
    samples = discover(tmp_path, "cityscapes", "val")
    # frame 0: all class 1; frame 1: half class 1, half class 2, plus ignored pixels
    assert samples[0].mask is not None and samples[1].mask is not None
    write_gray(samples[0].mask, np.ones((16, 32), dtype=np.uint8))
    second = np.ones((16, 32), dtype=np.uint8)
    second[:, 16:] = 2
    second[0] = 255
    write_gray(samples[1].mask, second)
    taxonomy = Taxonomy("toy", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    result = evaluate(
        ConstantModel(3, 1),
        samples,
        taxonomy,
        torch.device("cpu"),
        window,
        conditions={keys[0]: "day", keys[1]: "fog"},
        progress=False,
    )
    # ground truth rows, prediction columns: everything predicted as class 1
    assert result.confusion.tolist() == [[0, 0, 0], [0, 512 + 240, 0], [0, 240, 0]]
    report = result.report(taxonomy)
    assert report["per_class_iou"] == {"a": None, "b": pytest.approx(752 / 992), "c": 0.0}
    assert report["by_condition"]["day"]["miou"] == pytest.approx(1.0)
    assert report["by_condition"]["fog"]["miou"] == pytest.approx((240 / 480 + 0) / 2)


def test_bad_frames_are_skipped_and_counted_when_params_say_so(tmp_path: Path) -> None:
    from segloop.errors import DataError
    from segloop.taxonomy import CITYSCAPES
    from training.data import LabeledFrames

    make_cityscapes(tmp_path, {"val": 3}, size=(16, 32))
    samples = discover(tmp_path, "cityscapes", "val")
    samples[1].image.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="truncated PNG"):
        LabeledFrames(samples, CITYSCAPES, None, on_bad_file="error")
    frames = LabeledFrames(samples, CITYSCAPES, None, on_bad_file="skip")
    assert len(frames) == 2 and list(frames.skipped) == [samples[1].key]
    model = ConstantModel(19, 0)
    result = evaluate(
        model, samples, CITYSCAPES, torch.device("cpu"), progress=False, on_bad_file="skip"
    )
    assert list(result.skipped) == [samples[1].key]
    assert result.confusion.sum() == 2 * 16 * 32
    with pytest.raises(DataError):
        evaluate(model, samples, CITYSCAPES, torch.device("cpu"), progress=False)


class FlagLeftHalf(nn.Module):
    """A stand-in ELN: reliability 0 (flag as error) on the left half, 1 elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full((x.shape[0], 1, *x.shape[2:]), 10.0)
        out[..., : x.shape[3] // 2] = -10.0
        return out


@pytest.mark.parametrize("window", [None, (4, 4)])  # whole batch, or sliding window per frame
def test_eln_error_localization_scores(tmp_path: Path, window: tuple[int, int] | None) -> None:
    make_cityscapes(tmp_path, {"val": 2}, size=(4, 8))
    samples = discover(tmp_path, "cityscapes", "val")
    truth = np.zeros((4, 8), dtype=np.uint8)
    truth[:, 2:6] = 1  # the constant-0 model is wrong on columns 2..5
    truth[0, 0] = 255
    for sample in samples:
        assert sample.mask is not None
        write_gray(sample.mask, truth)
    taxonomy = Taxonomy("toy", ("a", "b"), ((0, 0, 0), (1, 1, 1)))
    result = evaluate(
        ConstantModel(2, 0),
        samples,
        taxonomy,
        torch.device("cpu"),
        window=window,
        progress=False,
        eln=FlagLeftHalf(),
    )
    # per frame, flagged: columns 0..3 (15 valid pixels); errors: columns 2..5 (16 pixels)
    # TP = columns 2..3 = 8, FP = columns 0..1 minus the ignored pixel = 7, FN = columns 4..5 = 8
    assert result.eln_counts is not None and result.eln_counts.tolist() == [16, 14, 16]
    scores = result.report(taxonomy)["eln_error_localization"]
    assert scores["precision"] == pytest.approx(8 / 15)
    assert scores["recall"] == pytest.approx(8 / 16)
