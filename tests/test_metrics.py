import math

import numpy as np
import pytest

from segloop.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy, summarize
from segloop.taxonomy import CITYSCAPES, labelids_to_trainids_lut


def test_confusion_matrix_counts_and_ignores() -> None:
    target = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [1, 0, 2]], dtype=np.uint8)
    conf = confusion_matrix(pred, target, 3)
    # rows ground truth, columns prediction; the 255 pixel is not counted
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_iou_hand_computed_with_absent_class() -> None:
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3;
    # class 2: TP 0, FN 1 -> 0; class 3: absent from both -> undefined, left out of the mean
    conf = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    ious = iou_per_class(conf)
    assert ious[:3] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(ious[3])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert pixel_accuracy(conf) == pytest.approx(3 / 5)
    report = summarize(conf, ["a", "b", "c", "d"])
    assert report["per_class_iou"]["d"] is None
    assert report["pixels"] == 5


def test_class_predicted_but_absent_in_ground_truth_counts_zero() -> None:
    conf = np.array([[3, 1], [0, 0]])  # class 1 never in ground truth, predicted once
    assert iou_per_class(conf).tolist() == [0.75, 0.0]


def test_shape_and_range_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.full((2, 2), 5), np.zeros((2, 2)), 3)


def test_cityscapes_labelid_mapping_and_palette() -> None:
    lut = labelids_to_trainids_lut()
    assert lut[7] == 0 and lut[8] == 1 and lut[26] == 13 and lut[33] == 18
    assert lut[0] == 255 and lut[6] == 255 and lut[30] == 255
    rgb = CITYSCAPES.colorize(np.array([[0, 255]], dtype=np.uint8))
    assert rgb[0, 0].tolist() == [128, 64, 128] and rgb[0, 1].tolist() == [0, 0, 0]
    assert CITYSCAPES.num_classes == 19
