"""Learning-rate schedule: linear warm-up then poly decay (DeepLab),
``lr_t = lr * min(1, (t + 1) / warmup) * (1 - t / T) ** power``."""

from __future__ import annotations


def poly_lr(base_lr: float, step: int, total_steps: int, power: float, warmup_steps: int) -> float:
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base_lr * warm * (1.0 - step / total_steps) ** power
