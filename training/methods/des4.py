"""DeS4 (Ding et al., IJCAI 2023): prototype head, decoupled teacher decoder, multi-entropy
sampling (MES).

- Prototype head (Eqs. 1-3, 6; :class:`training.models.heads.PrototypeHead`): class scores
  ``s * cos(f, p_c)`` against non-learnable prototypes (buffers) shared by teacher and
  student; ``s`` is a fixed scale (digest default 10: raw cosine logits give a near-uniform
  softmax).
- Unbiased teacher-decoder loss (Eq. 7-8): per-pixel weights ``(1 - max_c softmax)^2``
  normalised over each image's valid pixels (the paper's "argmax" read as the max
  probability), detached; a weighted sum of CE.
- MES (Eqs. 9-12): a per-class quota ``n_c / r_c`` with ``r_c = N_c / N_min`` over the labeled
  set; each class's entropy range is cut into ``k`` equal zones, zone ``i`` weighted
  ``1 / (alpha + mean entropy)``; features are drawn uniformly without replacement per zone,
  short zones leaving their remainder to the others; the prototype moves by EMA ``tau2``
  towards the mean of the L2-normalised sample and is renormalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segloop.taxonomy import IGNORE_INDEX
from training.models.heads import PrototypeHead


def unbiased_weights(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``W_i``: ``(1 - max softmax)^2`` normalised to sum 1 over each image's valid pixels."""
    valid = (labels != IGNORE_INDEX).float()
    w = (1.0 - F.softmax(logits.detach(), dim=1).amax(dim=1)) ** 2 * valid
    return w / w.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def unbiased_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``L_l^ub``: per image the W-weighted sum of pixel CE, averaged over images."""
    ce = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
    return (unbiased_weights(logits, labels) * ce).sum(dim=(1, 2)).mean()


def entropy_zones(entropies: torch.Tensor, zones: int) -> list[torch.Tensor]:
    """Indices in each of ``zones`` equal-width, left-closed zones over [min, max]; the
    maximum falls in the last zone."""
    low, high = float(entropies.min()), float(entropies.max())
    width = (high - low) / zones if high > low else 1.0
    zone = ((entropies - low) / width).floor().clamp(max=zones - 1).long()
    return [torch.nonzero(zone == i).flatten() for i in range(zones)]


def multi_entropy_sample(
    entropies: torch.Tensor, quota: int, zones: int, alpha: float, generator: torch.Generator
) -> torch.Tensor:
    """Indices of at most ``quota`` samples spread over ``zones`` equal-width entropy zones,
    zone ``i`` receiving ``quota * Z_i / sum Z`` with ``Z_i = 1 / (alpha + mean entropy)``,
    apportioned by largest remainders so the quotas sum to ``quota``."""
    members = entropy_zones(entropies, zones)
    weights = torch.tensor(
        [1.0 / (alpha + float(entropies[m].mean())) if m.numel() else 0.0 for m in members]
    )
    shares = weights / weights.sum() * quota
    want = shares.floor().long()
    remainder = quota - int(want.sum())  # largest-remainder apportionment: exactly `quota`
    if remainder > 0:
        want[(shares - want).argsort(descending=True)[:remainder]] += 1
    chosen: list[torch.Tensor] = []
    leftover = 0
    order = sorted(range(zones), key=lambda i: members[i].numel())
    for i in order:  # smallest zones first, so their shortfall can go to larger ones
        need = int(want[i]) + leftover
        perm = members[i][torch.randperm(members[i].numel(), generator=generator)]
        take = perm[:need]
        leftover = need - take.numel()
        chosen.append(take)
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def update_prototypes(
    head: PrototypeHead,
    features: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_ratio: torch.Tensor,
    momentum: float,
    zones: int,
    alpha: float,
    generator: torch.Generator,
) -> None:
    """MES + prototype EMA on one labeled batch (features B x D x h x w, labels B x h x w)."""
    probs = F.softmax(logits, dim=1)
    ent = -(probs * torch.log(probs + 1e-10)).sum(dim=1)
    flat_f = F.normalize(features, dim=1).permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    flat_e, flat_y = ent.reshape(-1), labels.reshape(-1)
    for c in flat_y[flat_y != IGNORE_INDEX].unique().tolist():
        idx = torch.nonzero(flat_y == c).flatten()
        quota = max(1, round(idx.numel() / float(class_ratio[c])))
        pick = idx[multi_entropy_sample(flat_e[idx], quota, zones, alpha, generator)]
        if pick.numel() == 0:
            continue
        mean = flat_f[pick].mean(dim=0)
        head.prototypes[c] = F.normalize(
            momentum * head.prototypes[c] + (1 - momentum) * mean, dim=0
        )
