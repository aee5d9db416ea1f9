"""U2PL equations and the mean teacher, on hand-computed cases."""

import math

import pytest
import torch
from torch import nn

from training.methods.ema import ema_decay, ema_update, make_teacher
from training.methods.u2pl import (
    NegativeQueue,
    PrototypeMemory,
    U2PLContrast,
    adaptive_lambda_u,
    class_ranks,
    entropy,
    entropy_partition,
    entropy_threshold,
    info_nce,
    labeled_negatives,
    prototypical_denoising,
    symmetric_ce,
    unlabeled_negatives,
    unreliable_fraction,
    unsupervised_loss,
)


def test_ema_decay_warms_up() -> None:
    assert ema_decay(0, 0.99) == 0.0
    assert ema_decay(9, 0.99) == pytest.approx(0.9)
    assert ema_decay(10_000, 0.99) == 0.99


def test_ema_over_weights_and_buffers() -> None:
    student = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.BatchNorm2d(1))
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    with torch.no_grad():
        teacher[0].weight.fill_(1.0)
        student[0].weight.fill_(3.0)
        teacher[1].running_mean.fill_(0.0)
        student[1].running_mean.fill_(4.0)
        student[1].num_batches_tracked.fill_(7)
    ema_update(teacher, student, decay=0.75)
    assert float(teacher[0].weight) == pytest.approx(1.5)  # 0.75 * 1 + 0.25 * 3
    assert float(teacher[1].running_mean) == pytest.approx(1.0)  # buffers are averaged
    assert int(teacher[1].num_batches_tracked) == 7  # integer buffers are copied


def test_entropy_and_alpha_schedule() -> None:
    uniform = torch.full((1, 4, 1, 1), 0.25)
    assert float(entropy(uniform)) == pytest.approx(math.log(4))
    assert float(entropy(torch.tensor([[[[1.0]], [[0.0]]]]))) == pytest.approx(0.0)
    assert unreliable_fraction(0.2, 0.0) == pytest.approx(0.2)
    assert unreliable_fraction(0.2, 0.5) == pytest.approx(0.1)
    assert unreliable_fraction(0.2, 1.0) == 0.0


def test_percentile_partition_and_lambda_u() -> None:
    ent = torch.arange(1, 11, dtype=torch.float32).view(1, 1, 10) / 10  # 0.1 .. 1.0
    valid = torch.ones_like(ent, dtype=torch.bool)
    # 0.8 quantile with linear interpolation: position 9 * 0.8 = 7.2 -> 0.8 + 0.2 * 0.1
    assert float(entropy_threshold(ent, valid, 0.2)) == pytest.approx(0.82)
    reliable, unreliable = entropy_partition(ent, valid, 0.2)
    assert int(reliable.sum()) == 8 and int(unreliable.sum()) == 2
    assert bool(unreliable[0, 0, -1]) and bool(unreliable[0, 0, -2])
    assert float(adaptive_lambda_u(reliable)) == pytest.approx(10 / 8)
    # ignored pixels are in neither set
    valid[0, 0, 0] = False
    reliable, unreliable = entropy_partition(ent, valid, 0.2)
    assert not bool(reliable[0, 0, 0]) and not bool(unreliable[0, 0, 0])


def test_unsupervised_loss_is_a_mean_over_reliable_pixels() -> None:
    logits = torch.zeros(1, 2, 1, 2)  # p = (0.5, 0.5): CE = ln 2 on each pixel
    pseudo = torch.tensor([[[0, 1]]])
    reliable = torch.tensor([[[True, False]]])
    # per-pixel mean over both pixels = ln2 / 2, times lambda_u = 2 / 1
    assert float(unsupervised_loss(logits, pseudo, reliable)) == pytest.approx(math.log(2))
    # symmetric CE: + xi2 * -log(1e-4) * (1 - p_y)
    sce = symmetric_ce(logits, torch.tensor([[[0, 255]]]), 1.0, 0.1)
    assert float(sce[0, 0, 0]) == pytest.approx(math.log(2) + 0.1 * -math.log(1e-4) * 0.5)
    assert float(sce[0, 0, 1]) == 0.0


def test_class_ranks() -> None:
    probs = torch.tensor([0.1, 0.6, 0.3]).view(1, 3, 1, 1)
    assert class_ranks(probs).flatten().tolist() == [2, 0, 1]


def test_labeled_negatives_are_not_empty() -> None:
    """Eq. 26: a pixel labeled 0 that ranks class 1 first is a negative for class 1 (the
    public code's mask demanded label == c and label != c at once: always empty)."""
    probs = torch.tensor([0.3, 0.5, 0.2]).view(1, 3, 1, 1)
    labels = torch.tensor([[[0]]])
    ranks = class_ranks(probs)
    assert bool(labeled_negatives(ranks, labels, c=1, r_l=3).all())
    assert not bool(labeled_negatives(ranks, labels, c=0, r_l=3).any())  # its own class
    assert not bool(labeled_negatives(ranks, torch.tensor([[[255]]]), c=1, r_l=3).any())


def test_unlabeled_negative_rank_window() -> None:
    probs = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]).view(1, 5, 1, 1)  # ranks 0..4
    ranks = class_ranks(probs)
    unreliable = torch.tensor([[[True]]])
    hits = [bool(unlabeled_negatives(ranks, unreliable, c, r_l=3, r_h=4)) for c in range(5)]
    assert hits == [False, False, False, True, False]  # only rank 3 is in [3, 4)
    assert not bool(unlabeled_negatives(ranks, ~unreliable, 3, 3, 4))  # reliable: never


def test_queue_fifo_order_and_capacity() -> None:
    q = NegativeQueue(num_classes=2, capacity=3, dim=1, device=torch.device("cpu"))
    q.push(0, torch.tensor([[1.0]]))
    q.push(0, torch.tensor([[2.0]]))
    q.push(0, torch.tensor([[3.0], [4.0]]))
    assert q.contents(0).flatten().tolist() == [2.0, 3.0, 4.0]
    q.push(0, torch.tensor([[5.0], [6.0], [7.0], [8.0]]))  # more than capacity: last 3 stay
    assert q.contents(0).flatten().tolist() == [6.0, 7.0, 8.0]
    assert int(q.size[1]) == 0 and q.memory.shape == (2, 3, 1)
    sample = q.sample(0, 50, torch.Generator().manual_seed(0))
    assert set(sample.flatten().tolist()) <= {6.0, 7.0, 8.0}


def test_prototype_momentum() -> None:
    memory = PrototypeMemory(1, 2, momentum=0.9, device=torch.device("cpu"))
    memory.update(0, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))  # first centroid (1, 1)
    assert memory.vectors[0].tolist() == [1.0, 1.0]
    memory.update(0, torch.tensor([[11.0, 1.0]]))
    assert memory.vectors[0].tolist() == pytest.approx([0.9 + 1.1, 0.9 + 0.1])


def test_info_nce_hand_computed() -> None:
    anchors = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([2.0, 0.0])  # cos 1
    negatives = torch.tensor([[[0.0, 1.0], [0.0, -3.0]]])  # cos 0 each
    tau = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert float(info_nce(anchors, positive, negatives, tau)) == pytest.approx(expected)


def test_prototypical_denoising() -> None:
    probs = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    features = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1)
    prototypes = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # distances 0 and 5
    out = prototypical_denoising(probs, features, prototypes).flatten()
    w0, w1 = 1 / (1 + math.exp(-5)), math.exp(-5) / (1 + math.exp(-5))
    assert out.tolist() == pytest.approx([w0, w1])  # equal p: p* = w, renormalised


def test_u2pl_contrast_runs_and_fills_queues() -> None:
    torch.manual_seed(0)
    contrast = U2PLContrast(
        3,
        4,
        torch.device("cpu"),
        anchors=8,
        negatives=5,
        tau=0.5,
        r_l=1,
        r_h=3,
        delta_p=0.3,
        queue_size=16,
        prototype_momentum=0.99,
        seed=0,
    )
    probs = torch.softmax(torch.randn(2, 3, 4, 4) * 3, dim=1)
    labels = probs.argmax(1)
    labels[0, 0, 0] = 255
    is_labeled = torch.tensor([True, False])
    reliable = torch.rand(2, 4, 4) > 0.3
    student = torch.randn(2, 4, 4, 4, requires_grad=True)
    loss = contrast(
        student, torch.randn(2, 4, 4, 4), probs, labels, is_labeled, reliable, ~reliable
    )
    loss.backward()
    assert float(loss.detach()) > 0 and student.grad is not None
    assert int(contrast.queue.size.sum()) > 0 and bool(contrast.prototypes.ready.any())


def test_unlabeled_weight_ramp() -> None:
    from training.semi_supervised import rampup

    assert [rampup(s, 4) for s in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
    assert rampup(0, 0) == 1.0
