"""Turn a predicted pool into the next round's pseudo-labels (torch-free).

Input: a predictions folder with ``label/<key>`` (trainIds), ``confidence/<key>`` (uint8
levels of :mod:`segloop.confidence_levels`) and optionally ``reliability/<key>`` (uint8, ELN
probability that the label is right) for every pool frame; these come from ``segloop
predict`` or, later, from the exported engines. Two streaming passes: per-class confidence
histograms, then DARS selection (:mod:`segloop.selection`) plus reliability masking per
frame. Writes ``<out>/<key>`` PNGs (255 = ignore), ``selection.json`` and
``annotate_next.txt`` (the frames with the lowest mean reliability, or confidence when no
reliability was predicted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import track

from segloop.atomic_files import write_json_atomic, write_text_atomic
from segloop.confidence_levels import decode_confidence, mean_confidence
from segloop.datasets import read_mask
from segloop.errors import DataError
from segloop.imageio import write_png
from segloop.parallel import default_workers, ordered_map
from segloop.params import SelectionParams
from segloop.selection import (
    ConfidenceHistogram,
    class_prior,
    dars_thresholds,
    select_pseudo_label,
)
from segloop.taxonomy import IGNORE_INDEX, Taxonomy

BINS = 256  # one bin per stored uint8 confidence level


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        raise DataError(f"{path}: missing or not an 8-bit single-channel PNG")
    return image


def level_position(stored: np.ndarray) -> np.ndarray:
    """uint8 level v -> the centre of histogram bin v. DARS needs only the order of
    confidences, and levels keep it, so the histograms count levels; confidences are decoded
    only where they are reported."""
    return (stored.astype(np.float32) + 0.5) / BINS


@dataclass(frozen=True)
class PoolPrediction:
    label: np.ndarray
    levels: np.ndarray  # stored uint8 confidence levels
    reliability: np.ndarray | None


def read_prediction(folder: Path, key: str, with_reliability: bool) -> PoolPrediction:
    label = _read_gray(folder / "label" / key)
    levels = _read_gray(folder / "confidence" / key)
    reliability = None
    path = folder / "reliability" / key
    if with_reliability and path.exists():
        reliability = _read_gray(path).astype(np.float32) / 255.0
    return PoolPrediction(label, levels, reliability)


def frame_class_counts(masks: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """N x C int64: pixels of each class in each mask (ignored pixels not counted)."""
    counts = np.zeros((len(masks), num_classes), dtype=np.int64)
    for i, mask in enumerate(masks):
        counts[i] = np.bincount(mask[mask != IGNORE_INDEX], minlength=num_classes)[:num_classes]
    return counts


def labeled_histogram(masks: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Pixels of each class over all masks."""
    return frame_class_counts(masks, num_classes).sum(axis=0)


@dataclass(frozen=True)
class FrameOutcome:
    """What pass 2 keeps of one frame: kept pixels per class, its mean trust, and (with
    ground truth) the pixel counts of :func:`quality_counts`."""

    kept: np.ndarray
    trust: float
    quality: tuple[int, int, int] | None


def quality_counts(pseudo: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(kept pixels whose label is right, kept pixels, ground-truth pixels) of one frame;
    ignore (255) in either map is not counted as kept."""
    labeled = truth != IGNORE_INDEX
    kept = (pseudo != IGNORE_INDEX) & labeled
    return int((pseudo[kept] == truth[kept]).sum()), int(kept.sum()), int(labeled.sum())


def select_pool(
    keys: list[str],
    labeled_masks: list[np.ndarray],
    taxonomy: Taxonomy,
    params: SelectionParams,
    report_dir: Path | None = None,
    truths: list[Path] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run both passes and write the pseudo-labels; returns the summary also saved as JSON
    (``selection.json`` and ``annotate_next.txt`` go to ``report_dir``, default the output).

    With ``truths`` (one ground-truth mask per key: the embedded pool keeps its own) the
    summary gains ``quality``: precision (kept pixels whose label is right) and coverage
    (share of ground-truth pixels kept), measured on the frames as they are written. Frames
    are read, selected and written on ``workers`` threads (default: one per core); the
    result does not depend on the thread count (each frame's sampling is seeded by its index).
    """
    folder, out = params.predictions, params.out
    report_dir = report_dir or out
    workers = workers or default_workers()
    if not (folder / "label").is_dir():
        raise DataError(
            f"{folder}: no label/ folder of pool predictions; run 'segloop label' or "
            "'segloop predict'"
        )
    if truths is not None and len(truths) != len(keys):
        raise ValueError(f"{len(truths)} ground-truth masks for {len(keys)} pool frames")
    prior = class_prior(labeled_histogram(labeled_masks, taxonomy.num_classes))
    hist = ConfidenceHistogram(taxonomy.num_classes, BINS)

    def read_for_histogram(key: str) -> PoolPrediction:
        return read_prediction(folder, key, with_reliability=False)

    predictions = ordered_map(read_for_histogram, keys, workers)
    for pred in track(
        predictions, total=len(keys), description="pass 1: histograms", transient=True
    ):
        hist.update(pred.label, level_position(pred.levels))
    selection = dars_thresholds(hist, prior, params.alpha)

    def select_frame(index: int) -> FrameOutcome:
        key = keys[index]
        pred = read_prediction(folder, key, with_reliability=params.use_reliability)
        rng = np.random.default_rng([params.seed, index])
        pseudo = select_pseudo_label(
            pred.label,
            level_position(pred.levels),
            pred.reliability,
            selection,
            rng,
            params.reliability_threshold,
        )
        write_png(out / key, pseudo)
        kept = np.bincount(pseudo[pseudo != IGNORE_INDEX], minlength=taxonomy.num_classes)
        trust = (
            float(pred.reliability.mean())
            if pred.reliability is not None
            else mean_confidence(pred.levels)
        )
        quality = None
        if truths is not None:
            quality = quality_counts(pseudo, read_mask(truths[index], taxonomy, pseudo.shape))
        return FrameOutcome(kept[: taxonomy.num_classes], trust, quality)

    kept = np.zeros(taxonomy.num_classes, dtype=np.int64)
    scores: list[tuple[float, str]] = []
    counts = np.zeros(3, dtype=np.int64)
    outcomes = ordered_map(select_frame, range(len(keys)), workers)
    for key, outcome in zip(
        keys,
        track(outcomes, total=len(keys), description="pass 2: selecting", transient=True),
        strict=True,
    ):
        kept += outcome.kept
        scores.append((outcome.trust, key))
        if outcome.quality is not None:
            counts += outcome.quality

    least = [key for _, key in sorted(scores)[: params.annotate_next]]
    report_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report_dir / "annotate_next.txt", "".join(f"{k}\n" for k in least))
    total = max(hist.pixels, 1)
    summary: dict[str, Any] = {
        "frames": len(keys),
        "alpha": params.alpha,
        "kept_fraction": float(kept.sum() / total),
        "classes": {
            name: {
                "prior": float(prior[j]),
                "threshold": float(decode_confidence(round(selection.thresholds[j] * BINS))),
                "sampling_ratio": float(selection.ratios[j]),
                "kept_fraction": float(kept[j] / total),
            }
            for j, name in enumerate(taxonomy.classes)
        },
    }
    if truths is not None:
        correct, kept_labeled, labeled = (int(c) for c in counts)
        summary["quality"] = {
            "precision": correct / max(kept_labeled, 1),
            "coverage": kept_labeled / max(labeled, 1),
        }
    write_json_atomic(report_dir / "selection.json", summary)
    return summary
