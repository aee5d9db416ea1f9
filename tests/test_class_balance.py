"""``train.class_balance``: supervised pixel weights n_y^-p, mean 1 over labeled pixels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segloop.params import load_params
from segloop.taxonomy import IGNORE_INDEX
from training.methods.ecoc import ecoc_loss
from training.models import build_model
from training.objectives import HeadObjective, class_balanced_weights

# 3 pixels of class 0, 1 of class 2, 1 ignored
LABELS = torch.tensor([[[0, 0, 0, 2, IGNORE_INDEX]]])


def test_weights_hand_computed() -> None:
    # p = 1: raw 1/3, 1/3, 1/3, 1 (sum 2) scaled by 4 / 2: each class totals 2
    w = class_balanced_weights(LABELS, 1.0)
    assert w.flatten().tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0, 0.0])
    # p = 0.5: raw 1/sqrt(3) x 3 and 1, sum sqrt(3) + 1, scaled by 4 / (sqrt(3) + 1)
    w = class_balanced_weights(LABELS, 0.5)
    scale = 4 / (math.sqrt(3) + 1)
    assert w.flatten().tolist() == pytest.approx([scale / math.sqrt(3)] * 3 + [scale, 0.0])
    assert class_balanced_weights(LABELS, 0.0).flatten().tolist() == [1, 1, 1, 1, 0]


def test_all_ignored_batch_has_zero_weights() -> None:
    labels = torch.full((1, 2, 2), IGNORE_INDEX)
    assert class_balanced_weights(labels, 0.5).sum() == 0


def _head(*overrides: str) -> HeadObjective:
    params = load_params(None, list(overrides))
    return HeadObjective(build_model(params.model, 3), params)


def test_softmax_supervised_loss_is_the_weighted_mean_ce() -> None:
    scores = torch.randn(1, 3, 1, 5, generator=torch.Generator().manual_seed(0))
    pixel_ce = F.cross_entropy(scores, LABELS, ignore_index=IGNORE_INDEX, reduction="none")
    expected = (pixel_ce[0, 0, :4] * torch.tensor([2 / 3, 2 / 3, 2 / 3, 2.0])).sum() / 4
    balanced = _head("train.class_balance=1.0").supervised(scores, LABELS)
    torch.testing.assert_close(balanced, expected)
    plain = _head().supervised(scores, LABELS)
    torch.testing.assert_close(plain, pixel_ce[0, 0, :4].mean())


def test_ecoc_supervised_loss_uses_the_weights() -> None:
    sets = ["model.head=ecoc", "model.ecoc.bits=4", "model.ecoc.min_distance=2"]
    head = _head(*sets, "train.class_balance=1.0")
    bits = torch.randn(1, 4, 1, 5, generator=torch.Generator().manual_seed(1))
    codebook = head.model.head.codebook
    assert isinstance(codebook, torch.Tensor)
    weights = torch.tensor([[[2 / 3, 2 / 3, 2 / 3, 2.0, 0.0]]])
    safe = torch.tensor([[[0, 0, 0, 2, 0]]])
    e = head.ecoc
    expected = ecoc_loss(bits, None, safe, weights, codebook, e.pcd_weight, e.pcc_weight, e.tau)
    torch.testing.assert_close(head.supervised(bits, LABELS), expected)
    unweighted = _head(*sets).supervised(bits, LABELS)
    assert not torch.allclose(unweighted, expected)
