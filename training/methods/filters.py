"""How pixel filters combine, defined once for every recipe.

Each enabled filter (confidence threshold, U2PL entropy partition, ELN mask) says which
pseudo-labeled pixels it trusts. A pixel is **supervised** where every filter trusts it, and
is **unreliable** (a source of U2PL negatives) where any filter distrusts it; pixels outside
``valid`` are neither.
"""

from __future__ import annotations

import torch


def combine_filters(
    valid: torch.Tensor, trusted: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reliable, unreliable): valid AND all filters; valid AND NOT reliable."""
    reliable = valid.clone()
    for mask in trusted:
        reliable &= mask
    return reliable, valid & ~reliable
