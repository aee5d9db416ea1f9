"""Dataset-level evaluation: confusion matrix, per-class IoU, mIoU, pixel accuracy, and the
same per lighting/weather condition where the dataset records conditions.

Frames larger than the window are tiled (``sliding_window_probs``): window-sized crops at
stride ``window * (1 - overlap)``, the last one flush with the border, softmax probabilities
averaged where tiles overlap. Nothing depends on the number of classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn

from segloop.datasets import Sample, read_pair
from segloop.errors import DataError
from segloop.metrics import confusion_matrix, summarize
from segloop.params import Params, eval_window
from segloop.taxonomy import Taxonomy
from training.data import to_tensor
from training.methods.eln import eln_mask
from training.models.eln import eln_inputs


def _starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return [*starts, length - window]


@torch.no_grad()
def sliding_window_mean(
    maps: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    window: tuple[int, int],
    overlap: float,
) -> torch.Tensor:
    """``maps`` (a 1 x 3 x h x w crop -> 1 x M x h x w) over a 1 x 3 x H x W image, tiled by
    ``window``, averaged where tiles overlap: 1 x M x H x W."""
    _, _, height, width = image.shape
    win_h, win_w = min(window[0], height), min(window[1], width)
    stride_h = max(int(win_h * (1 - overlap)), 1)
    stride_w = max(int(win_w * (1 - overlap)), 1)
    total: torch.Tensor | None = None
    counts = torch.zeros(1, 1, height, width, device=image.device)
    for y in _starts(height, win_h, stride_h):
        for x in _starts(width, win_w, stride_w):
            tile = maps(image[:, :, y : y + win_h, x : x + win_w])
            if total is None:
                total = torch.zeros(1, tile.shape[1], height, width, device=image.device)
            total[:, :, y : y + win_h, x : x + win_w] += tile
            counts[:, :, y : y + win_h, x : x + win_w] += 1
    assert total is not None
    return total / counts


def sliding_window_probs(
    model: nn.Module, image: torch.Tensor, window: tuple[int, int], overlap: float
) -> torch.Tensor:
    """Class probabilities (1 x C x H x W) of a 1 x 3 x H x W image, tiled by ``window``."""
    return sliding_window_mean(
        lambda crop: F.softmax(model(crop).float(), dim=1), image, window, overlap
    )


@torch.no_grad()
def frame_probs(
    model: nn.Module,
    image: np.ndarray,
    device: torch.device,
    window: tuple[int, int] | None,
    overlap: float,
) -> torch.Tensor:
    """1 x C x H x W class probabilities of one HxWx3 RGB frame, tiled when ``window`` is set."""
    x = to_tensor(image)[None].to(device)
    if window is None:
        return F.softmax(model(x).float(), dim=1)
    return sliding_window_probs(model, x, window, overlap)


@dataclass
class EvalResult:
    confusion: np.ndarray
    by_condition: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # ELN error localisation over valid pixels: an "error" is argmax != ground truth; the
    # ELN flags one where its reliability is below 0.5 (ELN paper, Table 4; pooled counts).
    eln_counts: np.ndarray | None = None  # [flagged errors, flagged correct, missed errors]

    def report(self, taxonomy: Taxonomy) -> dict[str, Any]:
        out = summarize(self.confusion, taxonomy.classes)
        out["by_condition"] = {
            name: {
                k: v
                for k, v in summarize(conf, taxonomy.classes).items()
                if k in ("miou", "pixel_accuracy", "pixels")
            }
            for name, conf in sorted(self.by_condition.items())
        }
        if self.eln_counts is not None:
            tp, fp, fn = (int(v) for v in self.eln_counts)
            precision = tp / max(tp + fp, 1)
            recall = tp / max(tp + fn, 1)
            out["eln_error_localization"] = {
                "precision": precision,
                "recall": recall,
                "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            }
        out["skipped"] = self.skipped
        out["confusion_matrix"] = self.confusion.tolist()
        return out


def _flagged_wrong(eln: nn.Module, images: torch.Tensor, probs: torch.Tensor) -> np.ndarray:
    """Pixels the ELN does not call reliable (ELN Eq. 9), B x H x W bool."""
    return (~eln_mask(eln(eln_inputs(images, probs)))[:, 0]).cpu().numpy()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    samples: Sequence[Sample],
    taxonomy: Taxonomy,
    device: torch.device,
    window: tuple[int, int] | None = None,
    overlap: float = 1 / 3,
    conditions: dict[str, str] | None = None,
    batch_size: int = 4,
    progress: bool = True,
    on_bad_file: str = "error",
    eln: nn.Module | None = None,
) -> EvalResult:
    """Predict every sample (argmax of class scores) and accumulate confusion matrices.

    With ``on_bad_file="skip"`` an unreadable or inconsistent frame is left out and recorded
    in ``EvalResult.skipped``; otherwise its :class:`DataError` propagates. With an ``eln``,
    its error localisation is scored too.
    """
    was_training = model.training
    model.eval()
    n = taxonomy.num_classes
    result = EvalResult(np.zeros((n, n), dtype=np.int64))
    if eln is not None:
        eln.eval()
        result.eln_counts = np.zeros(3, dtype=np.int64)
    conditions = conditions or {}
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    iterator = track(batches, description="evaluating", transient=True) if progress else batches
    for candidates in iterator:
        batch, pairs = [], []
        for sample in candidates:
            try:
                pairs.append(read_pair(sample, taxonomy))
                batch.append(sample)
            except DataError as exc:
                if on_bad_file != "skip":
                    raise
                result.skipped[sample.key] = str(exc)
        if not batch:
            continue
        same_size = len({p[0].shape for p in pairs}) == 1
        fits = window is None or all(
            p[0].shape[0] <= window[0] and p[0].shape[1] <= window[1] for p in pairs
        )
        if same_size and fits:
            x = torch.stack([to_tensor(p[0]) for p in pairs]).to(device)
            batch_probs = F.softmax(model(x).float(), dim=1)
            probs = list(batch_probs.split(1))
            eln_batches = [(x, batch_probs)]  # the ELN sees the batch at once
        else:
            probs = [frame_probs(model, img, device, window, overlap) for img, _ in pairs]
            eln_batches = (
                [
                    (to_tensor(img)[None].to(device), p)
                    for (img, _), p in zip(pairs, probs, strict=True)
                ]
                if eln is not None
                else []
            )
        preds = [p.argmax(dim=1)[0].cpu().numpy().astype(np.uint8) for p in probs]
        if eln is not None and result.eln_counts is not None:
            flags = [f for images, p in eln_batches for f in _flagged_wrong(eln, images, p)]
            for (_, mask), flagged, pred in zip(pairs, flags, preds, strict=True):
                valid = mask != taxonomy.ignore_index
                error = (pred != mask) & valid
                result.eln_counts += [
                    int((flagged & error).sum()),
                    int((flagged & ~error & valid).sum()),
                    int((~flagged & error).sum()),
                ]
        for sample, (_, mask), pred in zip(batch, pairs, preds, strict=True):
            conf = confusion_matrix(pred, mask, n, taxonomy.ignore_index)
            result.confusion += conf
            condition = conditions.get(sample.key)
            if condition is not None:
                result.by_condition.setdefault(condition, np.zeros_like(conf))
                result.by_condition[condition] += conf
    model.train(was_training)
    return result


def evaluate_with_params(
    model: nn.Module,
    samples: Sequence[Sample],
    taxonomy: Taxonomy,
    device: torch.device,
    params: Params,
    conditions: dict[str, str] | None = None,
    progress: bool = True,
    eln: nn.Module | None = None,
) -> EvalResult:
    """:func:`evaluate` configured by the ``eval`` and ``data`` sections of ``params``."""
    return evaluate(
        model,
        samples,
        taxonomy,
        device,
        eval_window(params),
        params.eval.overlap,
        conditions,
        params.eval.batch_size,
        progress,
        params.data.on_bad_file,
        eln,
    )


def evaluate_checkpoint(params: Params, path: Path) -> dict[str, Any]:
    """``segloop eval``'s report for the checkpoint at ``path`` on ``params.eval.split``."""
    from segloop.splits import read_conditions, split_samples
    from training.checkpoint import load_for_inference
    from training.host import configure_host
    from training.trainer import resolve_device

    configure_host(params.train)
    device = resolve_device(params.train.device)
    model, taxonomy, eln = load_for_inference(path, device)
    samples = split_samples(params.data, params.eval.split, with_masks=True)
    result = evaluate_with_params(
        model, samples, taxonomy, device, params, read_conditions(params.data.root), eln=eln
    )
    return {
        "checkpoint": str(path),
        "split": params.eval.split,
        "frames": len(samples),
        **result.report(taxonomy),
    }
