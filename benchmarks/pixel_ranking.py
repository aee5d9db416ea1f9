"""Diagnostic: how well the online pseudo-label filters rank a model's pixels.

U2PL's partition keeps the pixels of lowest entropy (of the softmax over the head's class
scores); the confidence threshold keeps those of highest confidence (the softmax maximum, or
for the ECOC head the mean bit confidence ``mean_k sigmoid(|z_k|)``). Both end up keeping a
share of the pixels; what decides the pseudo-labels' quality is how well each ranks right
pixels above wrong ones. For every ``--every``-th pool frame (whole frame, eval mode), this
ranks all pixels by each score and prints the share of correct pixels among the top
``--coverage`` fractions, against the pool's hidden ground truth, plus how many pixels sit at
the score's extreme (ties that rank at random). A checkpoint with an ELN also ranks by the
ELN's reliability (its probability that the pixel's label is right), and reports what the
ELN mask (reliability above 0.5, Eq. 9) keeps.

A fixed confidence threshold ranks every frame against one global scale; U2PL's partition
takes its percentile within each training batch, so a batch of hard frames keeps the same
share as a batch of easy ones. ``--batch N`` adds that cut: the frames in random groups of N,
each group's top share kept.

    python benchmarks/pixel_ranking.py runs/ablation/warm/ecoc/seed0/best.pt

Run from a checkout whose ``params.yaml`` points at the data the checkpoint was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from segloop.datasets import read_image, read_mask
from segloop.params import load_params
from segloop.splits import split_samples
from segloop.taxonomy import IGNORE_INDEX
from training.checkpoint import load_for_inference
from training.data import to_tensor
from training.methods.u2pl import entropy
from training.models.heads import EcocHead
from training.objectives import HeadObjective
from training.semi_supervised import upsample


def ranking(values: np.ndarray) -> np.ndarray:
    """Indices from highest to lowest value; ties in a random order, as a percentile cut
    would break them."""
    rng = np.random.default_rng(0)
    return np.lexsort((rng.random(values.size), -values))


def batch_groups(frames: int, size: int) -> list[np.ndarray]:
    """The frame indices shuffled (seed 0) and cut into groups of ``size``."""
    order = np.random.default_rng(0).permutation(frames)
    return [order[i : i + size] for i in range(0, frames, size)]


def per_batch_precision(
    scores: list[np.ndarray],
    correct: list[np.ndarray],
    groups: list[np.ndarray],
    shares: list[float],
) -> list[float]:
    """For each share, the correct share of the pixels kept when each group keeps its own
    top ``share`` (each group ranked once)."""
    kept = np.zeros(len(shares))
    right = np.zeros(len(shares))
    for group in groups:
        values = np.concatenate([scores[i] for i in group])
        hits = np.concatenate([correct[i] for i in group])
        order = ranking(values)
        for k, share in enumerate(shares):
            top = order[: int(share * values.size)]
            kept[k] += top.size
            right[k] += int(hits[top].sum())
    return [float(v) for v in right / kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--every", type=int, default=20, help="use every N-th pool frame")
    parser.add_argument("--coverage", type=float, nargs="+", default=[0.5, 0.8, 0.84, 0.9])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--batch", type=int, default=0, help="also cut within random groups of N frames"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    model, taxonomy, eln = load_for_inference(args.checkpoint, torch.device("cpu"))
    model.eval()
    ecoc = isinstance(model.head, EcocHead)
    # the trainer's own probabilities and confidence, for the checkpoint's head
    head_kind = "ecoc" if ecoc else "softmax"
    head_params = params.model_copy(
        update={"model": params.model.model_copy(update={"head": head_kind})}
    )
    objective = HeadObjective(model, head_params)
    samples = split_samples(params.data, "unlabeled", with_masks=True)[:: args.every]
    scores: dict[str, list[np.ndarray]] = {"low entropy": [], "high confidence": []}
    if eln is not None:
        scores["ELN reliability"] = []
    correct: list[np.ndarray] = []
    with torch.no_grad():
        for sample in track(samples, description="ranking", transient=True):
            assert sample.mask is not None
            x = to_tensor(read_image(sample.image))[None]
            raw_up = upsample(model.forward_parts(x).raw, x.shape[2:])
            probs = objective.probabilities(raw_up)
            confidence = objective.confidence(raw_up, probs)
            truth = read_mask(sample.mask, taxonomy)
            valid = truth != IGNORE_INDEX
            scores["low entropy"].append(-entropy(probs)[0].numpy()[valid])
            scores["high confidence"].append(confidence[0].numpy()[valid])
            correct.append((probs.argmax(dim=1)[0].numpy() == truth)[valid])
            if eln is not None:
                reliability = eln.predict_reliability(x, probs)[0, 0].numpy()
                scores["ELN reliability"].append(reliability[valid])
    right = np.concatenate(correct)
    name = "mean bit confidence" if ecoc else "softmax maximum"
    table = Table(
        title=f"{args.checkpoint}: {len(samples)} pool frames, {right.size} pixels, "
        f"{100 * right.mean():.2f}% correct"
    )
    table.add_column("ranked by")
    for c in args.coverage:
        table.add_column(f"top {100 * c:g}% correct", justify="right")
    table.add_column("pixels at the extreme value", justify="right")
    for label, parts in scores.items():
        values = np.concatenate(parts)
        order = ranking(values)
        cells = [f"{100 * right[order[: int(c * values.size)]].mean():.2f}%" for c in args.coverage]
        extreme = np.mean(values == values.max())
        shown = f"{label} ({name})" if label == "high confidence" else label
        table.add_row(shown, *cells, f"{100 * extreme:.1f}%")
        if args.batch:
            groups = batch_groups(len(parts), args.batch)
            precision = per_batch_precision(parts, correct, groups, args.coverage)
            cells = [f"{100 * value:.2f}%" for value in precision]
            table.add_row(f"{shown}, per batch of {args.batch}", *cells, "")
    console = Console()
    console.print(table)
    if eln is not None:
        mask = np.concatenate(scores["ELN reliability"]) > 0.5
        console.print(
            f"ELN mask (reliability > 0.5): keeps {100 * mask.mean():.2f}% of the pixels, "
            f"{100 * right[mask].mean():.2f}% of them correct"
        )


if __name__ == "__main__":
    main()
