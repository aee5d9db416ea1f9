"""Predict a split with a checkpoint (teacher, plus its ELN when the checkpoint has one) and
write ``label/``, ``confidence/`` and ``reliability/`` PNGs per frame (``segloop predict``):
the input of ``segloop select``. Frames whose three outputs exist are skipped, so a rerun
resumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from segloop.datasets import Sample, read_image
from segloop.imageio import write_png
from training.data import to_tensor
from training.evaluation import sliding_window_probs
from training.models import ErrorLocalizationNetwork, SegmentationModel, eln_inputs

OUTPUTS = ("label", "confidence", "reliability")


@torch.no_grad()
def predict_frames(
    model: SegmentationModel,
    eln: ErrorLocalizationNetwork | None,
    samples: Sequence[Sample],
    out: Path,
    device: torch.device,
    window: tuple[int, int],
    overlap: float,
) -> int:
    """Write the three maps for every sample not already done; returns frames written."""
    model.eval()
    written = 0
    for sample in track(samples, description="predicting", transient=True):
        targets = [out / name / sample.key for name in OUTPUTS]
        if all(t.exists() for t in targets[: 2 if eln is None else 3]):
            continue
        x = to_tensor(read_image(sample.image))[None].to(device)
        probs = sliding_window_probs(model, x, window, overlap)
        confidence, label = probs.max(dim=1)
        write_png(targets[0], label[0].cpu().numpy().astype(np.uint8))
        write_png(targets[1], (confidence[0] * 255).round().cpu().numpy().astype(np.uint8))
        if eln is not None:
            reliability = torch.sigmoid(eln(eln_inputs(x, probs)))[0, 0]
            write_png(targets[2], (reliability * 255).round().cpu().numpy().astype(np.uint8))
        written += 1
    return written
