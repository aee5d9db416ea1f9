"""Predict a split with a checkpoint (teacher, plus its ELN when the checkpoint has one) and
write ``label/``, ``confidence/`` and ``reliability/`` PNGs per frame (``segloop predict``):
the input of ``segloop select``.

A rerun resumes: frames whose maps exist are skipped. What the maps depend on (the
checkpoint's bytes, the confidence encoding, the sliding window) is stamped in
``predictor.json`` beside them; where the stamp differs, or maps exist with no stamp (written
before stamps, when confidences were ``round(255 c)``), the old maps are removed first, so a
folder never mixes two checkpoints or two encodings."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track

from segloop.atomic_files import write_json_atomic
from segloop.confidence_levels import ENCODING
from segloop.datasets import Sample, read_image
from segloop.fingerprint import file_sha256
from segloop.imageio import write_png
from training.confidence_levels import confidence_levels
from training.data import to_tensor
from training.evaluation import sliding_window_mean
from training.models import ErrorLocalizationNetwork, SegmentationModel, eln_inputs

OUTPUTS = ("label", "confidence", "reliability")
STAMP_FILE = "predictor.json"


def predictor_stamp(checkpoint: Path, window: tuple[int, int], overlap: float) -> dict[str, Any]:
    """What a predictions folder's maps depend on, as JSON-ready values."""
    return {
        "checkpoint_sha256": file_sha256(checkpoint),
        "confidence_encoding": ENCODING,
        "window": list(window),
        "overlap": overlap,
    }


def claim_folder(out: Path, stamp: dict[str, Any]) -> bool:
    """Make ``out`` hold only maps made under ``stamp``, and stamp it. Returns True when maps
    of another stamp (or of none) were removed. The maps go before the new stamp is written,
    so a crash in between leaves either the old stamp (removed again on rerun) or no maps."""
    stamp_path = out / STAMP_FILE
    try:
        previous = json.loads(stamp_path.read_text())
    except (OSError, ValueError):  # no stamp, or an unreadable one: nothing vouches for maps
        previous = None
    if previous == stamp:
        return False
    stale = [out / name for name in OUTPUTS if (out / name).is_dir()]
    for folder in stale:
        shutil.rmtree(folder)
    write_json_atomic(stamp_path, stamp)
    return bool(stale)


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
    """Write the three maps for every sample not already done; returns frames written.
    Call :func:`claim_folder` on ``out`` first."""
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
