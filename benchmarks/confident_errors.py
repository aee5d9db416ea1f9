"""Diagnostic: the confident errors a model would teach itself on the unlabeled pool.

The mean teacher keeps a pixel's pseudo-label where the softmax maximum of the class scores is
at least ``--threshold`` (0.95, `methods.confidence_threshold`); a confident wrong pixel is
learned as if it were right. For every ``--every``-th pool frame that has a ground-truth mask
(whole frame, eval mode, the clean view) this prints, per condition and against that hidden
ground truth: pixel accuracy, the share of pixels kept by the threshold and how many of those
are right, and the ``--top`` (true class -> predicted class) pairs of the kept wrong pixels,
as shares of the condition's pixels. A few pairs holding most of the kept errors (one region
of a condition read as one wrong class) is what self-training amplifies rather than corrects
(docs/RESULTS.md, ablation: "Why the retrained warm models gain less").

    python benchmarks/confident_errors.py runs/ablation/warm/softmax/seed0/best.pt --every 8

Run from a checkout whose ``params.yaml`` points at the data the checkpoint was trained on.
The softmax head's scores are its logits; for an ECOC head the softmax of the decoded scores
saturates (docs/METHODS.md), so read its figures with that in mind.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segloop.datasets import Sample, read_image, read_mask
from segloop.params import load_params
from segloop.splits import read_conditions, split_samples
from segloop.taxonomy import IGNORE_INDEX, Taxonomy
from training.checkpoint import load_for_inference
from training.data import to_tensor
from training.pseudo_quality import CORRECT, KEPT, VALID, pseudo_label_counts, quality


def kept_confusions(
    model: torch.nn.Module,
    samples: list[Sample],
    conditions: dict[str, str],
    taxonomy: Taxonomy,
    threshold: float,
    batch: int,
) -> tuple[dict[str, Counter[str]], dict[str, np.ndarray]]:
    """Per condition: frames, correct pixels and :func:`pseudo_label_counts` of the kept ones
    (the definitions of the online pseudo-label precision), and the confusion matrix (true,
    predicted) of the kept wrong pixels."""
    classes = taxonomy.num_classes
    counts: dict[str, Counter[str]] = {}
    confusions: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            images = torch.stack([to_tensor(read_image(s.image)) for s in chunk])
            confidence, prediction = F.softmax(model(images).float(), dim=1).max(1)
            maps = zip(chunk, confidence, prediction, strict=True)
            for sample, conf, pred in maps:
                assert sample.mask is not None  # main() keeps only frames with a mask
                truth = torch.from_numpy(read_mask(sample.mask, taxonomy).astype(np.int64))
                kept = conf >= threshold
                valid = truth != IGNORE_INDEX
                right = (pred == truth) & valid
                frame = Counter(pseudo_label_counts(pred, kept, truth))
                frame.update({"frames": 1, "correct": float(right.sum())})
                wrong_kept = (kept & valid & ~right).numpy()
                for name in (conditions.get(sample.key, "unknown"), "all"):
                    counts.setdefault(name, Counter()).update(frame)
                    matrix = confusions.setdefault(name, np.zeros((classes, classes), np.int64))
                    np.add.at(matrix, (truth.numpy()[wrong_kept], pred.numpy()[wrong_kept]), 1)
    return counts, confusions


def percent(share: float | None) -> str:
    """A share as a percentage; a share of nothing (None) as 0.0%."""
    return f"{100 * (share or 0.0):.1f}%"


def top_pairs(matrix: np.ndarray, pixels: int, names: tuple[str, ...], top: int) -> str:
    order = np.argsort(-matrix, axis=None)[:top]
    pairs = [np.unravel_index(index, matrix.shape) for index in order]
    return ", ".join(
        f"{names[t]} -> {names[p]} {100 * matrix[t, p] / pixels:.1f}%"
        for t, p in pairs
        if matrix[t, p]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=8, help="use every N-th pool frame")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--top", type=int, default=4, help="confusion pairs per condition")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    conditions = read_conditions(params.data.root)
    pool = [
        sample
        for sample in split_samples(params.data, "unlabeled", with_masks=True)[:: args.every]
        if sample.mask is not None
    ]
    if not pool:
        raise SystemExit("no frame of the unlabeled pool has a ground-truth mask to check against")
    print(
        "| checkpoint | condition | frames | pixel accuracy | kept | kept correct "
        "| largest kept errors (share of the condition's pixels) |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model, taxonomy, _ = load_for_inference(path, torch.device("cpu"))
        model.eval()
        counts, confusions = kept_confusions(
            model, pool, conditions, taxonomy, args.threshold, args.batch
        )
        for name in sorted(counts):
            count = counts[name]
            measured = quality(count[VALID], count[KEPT], count[CORRECT])
            pairs = top_pairs(confusions[name], int(count[VALID]), taxonomy.classes, args.top)
            print(
                f"| {path} | {name} | {count['frames']:.0f} "
                f"| {percent(count['correct'] / count[VALID])} "
                f"| {percent(measured['coverage'])} | {percent(measured['precision'])} | {pairs} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
