"""How good the pseudo-labels the unlabeled terms keep are, against the pool's hidden ground
truth (benchmarks only: ``train.measure_pseudo_labels``; training never reads the truth).

Per step, on the teacher's weak view: ``valid`` = pixels with a ground-truth class, ``kept``
= valid pixels the combined filters trust, ``correct`` = kept pixels whose pseudo-label is the
true class. Precision = correct / kept, coverage = kept / valid: the same definitions as
``segloop select --measure`` uses for the offline selection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segloop.taxonomy import IGNORE_INDEX
from training.history import training_intervals

VALID, KEPT, CORRECT = "pseudo_valid_px", "pseudo_kept_px", "pseudo_correct_px"


def pseudo_label_counts(
    pseudo: torch.Tensor, kept: torch.Tensor, truth: torch.Tensor
) -> dict[str, float]:
    """Pixel counts of one batch: B x H x W pseudo-labels, kept mask and hidden truth."""
    valid = truth != IGNORE_INDEX
    kept = kept & valid
    return {
        VALID: float(valid.sum()),
        KEPT: float(kept.sum()),
        CORRECT: float((kept & (pseudo == truth)).sum()),
    }


def quality(valid: float, kept: float, correct: float) -> dict[str, float | None]:
    """Precision (None when nothing was kept) and coverage from pixel counts."""
    return {
        "precision": correct / kept if kept > 0 else None,
        "coverage": kept / valid if valid > 0 else 0.0,
    }


def quality_over_history(path: Path) -> dict[str, Any] | None:
    """Precision and coverage over every logged interval that carries the counts (each
    record holds per-step means over the steps since the previous record), or None."""
    totals = {VALID: 0.0, KEPT: 0.0, CORRECT: 0.0}
    measured = 0
    for steps, record in training_intervals(path):
        if VALID in record:
            measured += steps
            for key in totals:
                totals[key] += steps * record[key]
    if not measured:
        return None
    return {**quality(totals[VALID], totals[KEPT], totals[CORRECT]), "steps": measured}
