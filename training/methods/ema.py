"""Mean teacher (Tarvainen & Valpola 2017): ``theta_t <- m theta_t + (1 - m) theta_s``.

The decay is step-aware, ``m_t = min(1 - 1 / (t + 1), m)`` (U2PL and DAFormer code), so the
teacher follows the student closely at first. Unlike ELN's code, buffers are averaged too:
BatchNorm running statistics are part of what the teacher predicts with in eval mode, so an
EMA of weights over stale student statistics would mislabel. Integer buffers
(``num_batches_tracked``) are copied.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def ema_decay(step: int, max_decay: float) -> float:
    return min(1.0 - 1.0 / (step + 1), max_decay)


def make_teacher(student: ModuleT) -> ModuleT:
    """A frozen copy of the student (no gradients, eval mode)."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float, prefix: str = "") -> None:
    """Average parameters and floating buffers whose names start with ``prefix``."""
    t_state = teacher.state_dict()
    for name, value in student.state_dict().items():
        if not name.startswith(prefix):
            continue
        target = t_state[name]
        if target.dtype.is_floating_point:
            target.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
        else:
            target.copy_(value)
