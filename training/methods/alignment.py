"""Distribution alignment of the teacher's pseudo-labels, per group of unlabeled frames.

ReMixMatch (Berthelot et al., ICLR 2020, §3.2): the teacher's class probabilities ``q`` of an
unlabeled pixel are rescaled by the ratio of the labeled class distribution ``p(y)`` to the
running mean ``p~(y)`` of the teacher's own predictions on unlabeled data, and renormalized::

    q~ = Normalize(q * p(y) / p~(y))

It is the online, probability-level counterpart of DARS's distribution alignment (which can
only drop pixels): where the teacher reads a whole class as another (foggy sky as building),
``p~(sky)`` falls far below ``p(sky)`` and the ratio lifts sky wherever the teacher still
gives it some probability, so the pseudo-label can return to sky instead of only being cut.

Choices (the paper aligns one marginal over the whole unlabeled set):

- **Per group.** A systematic error lives in one condition (fog), where the pool-wide marginal
  barely moves (fog is a fifth of the embedded pool). ``p~`` is kept per group of frames,
  the dataset's conditions (``conditions.csv``) or one group for the whole pool, and each
  group is aligned to the labeled distribution. This assumes every condition has about the
  labeled class distribution (same roads, other weather), as DARS assumes for the pool.
- **Running mean.** The paper averages the last 128 batches; here each group keeps an
  exponential mean with per-frame decay ``momentum``, bias-corrected (sums and weights both
  decay), so the first frames of a group are not pulled toward zero. A batch updates the
  estimate before it is aligned. ``p~`` averages the raw (unaligned) teacher probabilities.
- Classes absent from the labeled set have ``p(y) = 0`` and are never pseudo-labeled, as in
  DARS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

POOL_GROUP = "pool"
UNKNOWN_GROUP = "unknown"
MIN_MARGINAL = 1e-6  # floor of p~(y) in the ratio: a class the teacher never predicts


def frame_groups(
    keys: Sequence[str], conditions: Mapping[str, str] | None
) -> tuple[list[str], list[int]]:
    """(group names, each frame's group index). ``conditions`` None: one group for the pool;
    frames missing from ``conditions`` form an ``unknown`` group."""
    if conditions is None:
        return [POOL_GROUP], [0] * len(keys)
    labels = [conditions.get(key, UNKNOWN_GROUP) for key in keys]
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return names, [index[label] for label in labels]


def align(probs: torch.Tensor, prior: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
    """``Normalize(q * p(y) / p~(y))`` for B x C x H x W ``probs`` and per-frame B x C
    ``marginal``; ``prior`` is the C labeled class ratios."""
    ratio = prior[None, :] / marginal.clamp_min(MIN_MARGINAL)
    scaled = probs * ratio[:, :, None, None]
    return scaled / scaled.sum(dim=1, keepdim=True).clamp_min(torch.finfo(scaled.dtype).tiny)


class DistributionAlignment:
    """The per-group running marginals ``p~`` (G x C fixed-size tensors on the device)."""

    def __init__(
        self, prior: torch.Tensor, groups: Sequence[str], momentum: float, device: torch.device
    ) -> None:
        self.prior = prior.to(device=device, dtype=torch.float32)
        self.groups = list(groups)
        self.momentum = momentum
        self.sums = torch.zeros(len(self.groups), len(prior), device=device)
        self.weights = torch.zeros(len(self.groups), device=device)

    def marginals(self) -> torch.Tensor:
        """G x C running means ``p~`` (rows of groups not seen yet are zero)."""
        return self.sums / self.weights.clamp_min(1e-12)[:, None]

    def update(self, probs: torch.Tensor, group: torch.Tensor) -> None:
        """Add a batch: each frame's mean class probability enters its group's mean with one
        decay step per frame (frames of one batch get equal weight)."""
        frame_means = probs.float().mean(dim=(2, 3))
        for g in torch.unique(group).tolist():
            members = group == g
            k = int(members.sum())
            decay = self.momentum**k
            self.sums[g] = decay * self.sums[g] + frame_means[members].sum(dim=0)
            self.weights[g] = decay * self.weights[g] + k

    def __call__(self, probs: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Update the estimates with this batch, then return its aligned probabilities."""
        self.update(probs, group)
        return align(probs, self.prior, self.marginals()[group])

    def drift(self) -> dict[str, float]:
        """Total variation distance between each seen group's ``p~`` and the prior: how far
        the teacher's class distribution on that group is from the labeled one."""
        tv = 0.5 * (self.marginals() - self.prior[None, :]).abs().sum(dim=1)
        return {
            f"align_tv:{name}": float(tv[g])
            for g, name in enumerate(self.groups)
            if float(self.weights[g]) > 0
        }

    def state(self) -> dict[str, Any]:
        return {"groups": self.groups, "sums": self.sums, "weights": self.weights}

    def load_state(self, state: dict[str, Any]) -> None:
        if list(state["groups"]) != self.groups:
            raise ValueError(
                f"checkpoint aligns groups {state['groups']}, this run has {self.groups}"
            )
        self.sums.copy_(state["sums"])
        self.weights.copy_(state["weights"])
