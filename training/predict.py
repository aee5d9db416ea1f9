"""Predict a split with a checkpoint (teacher, plus its ELN when the checkpoint has one) and
write ``label/``, ``confidence/`` and ``reliability/`` PNGs per frame (``segloop predict``):
the input of ``segloop select``. Frames whose three outputs exist are skipped, so a rerun
resumes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track

from segloop.datasets import Sample, read_image
from segloop.imageio import write_png
from training.confidence_levels import confidence_levels
from training.data import to_tensor
from training.evaluation import sliding_window_mean
from training.models import ErrorLocalizationNetwork, SegmentationModel, eln_inputs

OUTPUTS = ("label", "confidence", "reliability")


def probs_and_confidence(model: SegmentationModel, image: torch.Tensor) -> torch.Tensor:
    """B x (C + 1) x H x W: class probabilities, then the head's winner confidence (for ECOC
    ``1 - d_SH``, not the softmax maximum: ``ClassifierHead.winner_confidence``), the same
    maps as ``labeler.onnx`` gives. Where tiles overlap both are averaged over the tiles."""
    scores = model(image).float()
    confidence = model.head.winner_confidence(scores)
    return torch.cat([F.softmax(scores, dim=1), confidence[:, None]], dim=1)


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
        maps = sliding_window_mean(partial(probs_and_confidence, model), x, window, overlap)
        probs, confidence = maps[:, :-1], maps[:, -1]
        label = probs.argmax(dim=1)
        write_png(targets[0], label[0].cpu().numpy().astype(np.uint8))
        write_png(targets[1], confidence_levels(confidence[0]).cpu().numpy())
        if eln is not None:
            reliability = torch.sigmoid(eln(eln_inputs(x, probs)))[0, 0]
            write_png(targets[2], (reliability * 255).round().cpu().numpy().astype(np.uint8))
        written += 1
    return written
