"""Diagnostic: what rare-class sampling does to the class mix of training batches.

Draws ``--steps`` batches of labeled crops the way the trainer does, once with uniform
sampling (``StepSampler``) and once with rare-class sampling (``RareClassSampler`` with the
params' ``train.rare_class_sampling``, recrops included), through the params' training
transform, and prints each class's share of the labeled pixels the batches hold. No model
is run.

    python benchmarks/rare_class_batches.py --steps 500

Run from a checkout whose ``params.yaml`` points at the data (``--set`` overrides it).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from segloop.params import load_params
from segloop.pool_selection import frame_class_counts, labeled_histogram
from segloop.splits import split_samples
from training.data import LabeledFrames, StepSampler, train_transform
from training.rare_class_sampling import RareClassPlan, RareClassSampler


def pixel_shares(
    frames: LabeledFrames, batches: Iterable[Sequence[tuple[int, ...]]], num_classes: int
) -> np.ndarray:
    """Each class's share of the labeled pixels over all crops of ``batches``."""
    masks = [frames[item][1].numpy() for batch in batches for item in batch]
    counts = labeled_histogram(masks, num_classes)
    return counts / counts.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    params = load_params("params.yaml", args.overrides)
    t, rcs = params.train, params.train.rare_class_sampling
    taxonomy = params.data.taxonomy.build()
    samples = split_samples(params.data, "labeled", with_masks=True)
    frames = LabeledFrames(
        samples, taxonomy, train_transform(t), min_crop_pixels=rcs.min_crop_ratio * rcs.min_pixels
    )
    counts = frame_class_counts([mask for _, mask in frames.pairs], taxonomy.num_classes)
    plan = RareClassPlan(counts, rcs.temperature, rcs.min_pixels)
    uniform = pixel_shares(
        frames, StepSampler(len(frames), t.batch_size, t.seed, args.steps), taxonomy.num_classes
    )
    rare = pixel_shares(
        frames, RareClassSampler(plan, t.batch_size, t.seed, args.steps), taxonomy.num_classes
    )
    drawn = dict(zip(plan.classes.tolist(), plan.probabilities.tolist(), strict=True))
    table = Table(
        title=f"labeled pixels in {args.steps} batches of {t.batch_size} "
        f"(T {rcs.temperature}, min_pixels {rcs.min_pixels})"
    )
    for column in ("class", "labeled set", "uniform batches", "RCS batches", "P(draw)"):
        table.add_column(column, justify="left" if column == "class" else "right")
    labeled = counts.sum(axis=0) / counts.sum()
    for c, name in enumerate(taxonomy.classes):
        table.add_row(
            name,
            f"{100 * labeled[c]:.3f}%",
            f"{100 * uniform[c]:.3f}%",
            f"{100 * rare[c]:.3f}%",
            f"{drawn[c]:.3f}" if c in drawn else "left out",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
