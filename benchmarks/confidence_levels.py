"""Diagnostic: how the uint8 encoding of the confidence map changes what DARS selects.

Predicts every ``--every``-th pool frame with a checkpoint (and its ELN), stores each pixel's
confidence both as ``round(255 c)`` (the encoding before format 2) and as the levels of
``segloop.confidence_levels``, runs the product's DARS selection (per-class histograms over
the levels, thresholds, random sampling among ties; ``segloop.selection``) on each, and
measures the kept pixels against the pool's ground truth, with and without the ELN mask.
The class prior is the labeled split's, as ``segloop select`` computes it.

    python benchmarks/confidence_levels.py runs/ablation/warm/softmax+eln/seed1/best.pt

Run from a checkout whose ``params.yaml`` points at the data the checkpoint was trained on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track

from segloop.confidence_levels import encode_confidence
from segloop.datasets import read_image, read_mask
from segloop.params import load_params
from segloop.pool_selection import BINS, labeled_histogram, level_position
from segloop.selection import (
    ConfidenceHistogram,
    class_prior,
    dars_thresholds,
    select_pseudo_label,
)
from segloop.splits import split_samples
from segloop.taxonomy import IGNORE_INDEX
from training.checkpoint import load_for_inference
from training.data import to_tensor
from training.models import eln_inputs

ENCODINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round(255 c)": lambda c: np.round(255 * c.astype(np.float64)).astype(np.uint8),
    "segloop.confidence_levels": encode_confidence,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--every", type=int, default=6, help="use every N-th pool frame")
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    model, taxonomy, eln = load_for_inference(args.checkpoint, torch.device("cpu"))
    model.eval()
    if eln is None:
        raise SystemExit(f"{args.checkpoint}: no ELN in the checkpoint")
    labeled = split_samples(params.data, "labeled", with_masks=True)
    masks = [read_mask(s.mask, taxonomy) for s in labeled if s.mask is not None]
    prior = class_prior(labeled_histogram(masks, taxonomy.num_classes))
    pool = split_samples(params.data, "unlabeled", with_masks=True)[:: args.every]
    frames = []
    with torch.no_grad():
        for sample in track(pool, description="predicting", transient=True):
            x = to_tensor(read_image(sample.image))[None]
            scores = model(x).float()
            probs = F.softmax(scores, dim=1)
            confidence = model.head.winner_confidence(scores)[0].numpy()
            reliable = (torch.sigmoid(eln(eln_inputs(x, probs)))[0, 0] > 0.5).numpy()
            label = probs.argmax(dim=1)[0].numpy().astype(np.uint8)
            assert sample.mask is not None
            truth = read_mask(sample.mask, taxonomy, label.shape)
            frames.append((label, confidence, reliable, truth))
    print(f"{args.checkpoint}: {len(frames)} pool frames, alpha {args.alpha}")
    print("| confidence map | share of pixels at level 255 | ELN mask | precision | coverage |")
    print("| --- | --- | --- | --- | --- |")
    for name, encode in ENCODINGS.items():
        levels = [encode(c) for _, c, _, _ in frames]
        top = np.mean([(level == 255).mean() for level in levels])
        positions = [level_position(level) for level in levels]
        hist = ConfidenceHistogram(taxonomy.num_classes, BINS)
        for (label, *_), position in zip(frames, positions, strict=True):
            hist.update(label, position)
        selection = dars_thresholds(hist, prior, args.alpha)
        for use_eln in (False, True):
            correct = kept = truth_px = 0
            for index, ((label, _, reliable, truth), position) in enumerate(
                zip(frames, positions, strict=True)
            ):
                rng = np.random.default_rng([0, index])
                pseudo = select_pseudo_label(
                    label,
                    position,
                    reliable.astype(np.float32) if use_eln else None,
                    selection,
                    rng,
                )
                labeled_px = truth != IGNORE_INDEX
                keep = (pseudo != IGNORE_INDEX) & labeled_px
                correct += int((pseudo[keep] == truth[keep]).sum())
                kept += int(keep.sum())
                truth_px += int(labeled_px.sum())
            print(
                f"| {name} | {100 * top:.1f}% | {'yes' if use_eln else 'no'} | "
                f"{100 * correct / max(kept, 1):.2f}% | {100 * kept / max(truth_px, 1):.2f}% |"
            )


if __name__ == "__main__":
    main()
