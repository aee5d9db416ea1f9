"""ELN training losses (Kwon & Kwak, CVPR 2022, Eqs. 3, 5, 6, 9, 10).

- Constrained CE for auxiliary decoders (Eq. 3): decoder k is trained on image X only while
  ``CE(P^k, Y) > alpha_k CE(P, Y)``, keeping it a fixed factor worse than the main decoder;
  the indicator is per image as in the paper (the code uses the batch mean).
- Class-balanced BCE (Eq. 5): error pixels weighted by ``w0 = #correct / #wrong``; ignored
  pixels are excluded (the code counts them as errors, teaching boundaries; digest §7).
- The ELN mask (Eq. 9) keeps pixels with ``sigmoid(B) > 0.5``.
- Pixel contrastive loss (Eq. 10) over the batch's ELN-valid pixels, on a random subset of
  ``samples`` pixels (Eq. 10 is quadratic in pixels; the code uses 32x32 windows instead).
  Eq. 10 sums over every same-label key, so its scale grows with the number of pixels
  sampled (measured: 25 -> 343 within 30 steps as the ELN mask opened, swamping the other
  terms); like the authors' code, which divides each class term by its pixel count, we
  average over an anchor's positives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segloop.taxonomy import IGNORE_INDEX


def per_image_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over each image's valid pixels (B,); 0 for an image with none."""
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
    valid = (labels != IGNORE_INDEX).float()
    return (per_pixel * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp_min(1.0)


def aux_indicators(
    aux_ce: list[torch.Tensor], main_ce: torch.Tensor, alphas: list[float]
) -> list[torch.Tensor]:
    """Eq. 3's indicators ``1[CE_k(X) > alpha_k CE(X)]``, one (B,) float tensor per decoder.

    An untrained decoder's CE is about ``log C`` (a near-uniform prediction), so where
    ``alpha_k CE(X)`` is above that the indicator is almost never 1 and decoder k stays
    untrained. The paper's alphas (20, 50) assume a small main CE; an ECOC head's decoded
    scores have a far larger one at the same pixel error (docs/RESULTS.md), hence
    ``eln_aux_active`` in the training history and the warning when a decoder cannot train.
    """
    return [
        (ce_k.detach() > alpha * main_ce.detach()).float()
        for ce_k, alpha in zip(aux_ce, alphas, strict=True)
    ]


def constrained_aux_loss(
    aux_ce: list[torch.Tensor], indicators: list[torch.Tensor]
) -> torch.Tensor:
    """Eq. 3: ``mean_X sum_k 1[CE_k(X) > alpha_k CE(X)] CE_k(X)`` from per-image CE tensors
    and the indicators of :func:`aux_indicators`."""
    total = torch.zeros((), device=aux_ce[0].device)
    for ce_k, active in zip(aux_ce, indicators, strict=True):
        total = total + (active * ce_k).mean()
    return total


def correctness(
    prediction: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ELN targets: (correct, valid) where correct = argmax == label on valid pixels."""
    valid = labels != IGNORE_INDEX
    return (prediction == labels) & valid, valid


def balanced_bce(
    eln_logits: torch.Tensor, correct: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Eq. 5 averaged over valid pixels: error pixels weighted by #correct / #wrong."""
    target = correct.float()
    n_correct = (correct & valid).sum().float()
    n_wrong = (~correct & valid).sum().float()
    w0 = n_correct / n_wrong.clamp_min(1.0)
    weights = torch.where(correct, torch.ones_like(target), w0.expand_as(target)) * valid.float()
    loss = F.binary_cross_entropy_with_logits(eln_logits, target, reduction="none")
    return (loss * weights).sum() / valid.float().sum().clamp_min(1.0)


def eln_mask(eln_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 9: round(sigmoid(B)) = 1, i.e. logit > 0."""
    return eln_logits > 0


def pixel_contrastive_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    tau: float,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Eq. 10 on ``samples`` random valid pixels of the batch: for each anchor i (student
    embedding) and each same-label key j (teacher embedding, no gradient),
    ``-log d(i,j) / (d(i,j) + sum_{k: other label} d(i,k))``, ``d = exp(cos / tau)``,
    averaged over j (see the module docstring) and over anchors."""
    s = F.normalize(student.permute(0, 2, 3, 1)[valid], dim=1)
    t = F.normalize(teacher.detach().permute(0, 2, 3, 1)[valid], dim=1)
    y = labels[valid]
    if y.numel() < 2:
        return student.sum() * 0.0
    pick = torch.randperm(y.numel(), generator=generator)[:samples].to(y.device)
    s, t, y = s[pick], t[pick], y[pick]
    sim = s @ t.T / tau  # anchors x keys
    same = y[:, None] == y[None, :]
    neg = torch.logsumexp(sim.masked_fill(same, float("-inf")), dim=1, keepdim=True)
    # log(d_ij / (d_ij + sum_neg)) = sim_ij - logaddexp(sim_ij, log sum_neg)
    log_ratio = sim - torch.logaddexp(sim, neg.expand_as(sim))
    positives = same.float()
    per_anchor = -(log_ratio * positives).sum(dim=1) / positives.sum(dim=1)
    return per_anchor.mean()
