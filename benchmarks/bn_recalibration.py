"""Diagnostic: how much of a checkpoint's validation mIoU depends on its BatchNorm running
statistics. Evaluates each checkpoint as saved, then with the running mean and variance of
every BatchNorm layer recomputed (training/precise_bn.py, the function ``methods.precise_bn``
uses: cumulative average, weights untouched) over clean, unaugmented frames of the labeled
split, and over frames of the unlabeled pool.

    python benchmarks/bn_recalibration.py runs/ablation/mean-teacher/seed0/best.pt \
        runs/ablation/supervised-restart/seed0/best.pt --frames 375 --threads 1

A mean-teacher model whose statistics were averaged over the student's strong views scores
differently once they are recomputed on clean frames (docs/RESULTS.md, the ablation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from segloop.datasets import read_image
from segloop.params import Params, load_params
from segloop.splits import read_conditions, split_samples
from training.checkpoint import load_for_inference
from training.evaluation import evaluate_with_params
from training.precise_bn import frame_batches, recompute_batchnorm


def clean_frames(params: Params, split: str, count: int) -> list[np.ndarray]:
    samples = split_samples(params.data, split, with_masks=False)[:count]
    return [read_image(sample.image) for sample in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=375, help="frames per statistics set")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    device = torch.device("cpu")
    val = split_samples(params.data, "val", with_masks=True)
    conditions = read_conditions(params.data.root)
    statistics = {
        "as saved": None,
        "labeled frames": clean_frames(params, "labeled", args.frames),
        "pool frames": clean_frames(params, "unlabeled", args.frames),
    }
    print("| checkpoint | BatchNorm statistics | mIoU | by condition |")
    print("|---|---|---|---|")
    for path in args.checkpoints:
        for name, frames in statistics.items():
            model, taxonomy, _ = load_for_inference(path, device)
            if frames is not None:
                batches = frame_batches(frames, params.train.crop, args.batch, device)
                recompute_batchnorm(model, batches)
            model.eval()
            report = evaluate_with_params(
                model, val, taxonomy, device, params, conditions, progress=False
            ).report(taxonomy)
            scores = report["by_condition"].items()
            by_condition = ", ".join(f"{cond} {100 * value['miou']:.1f}" for cond, value in scores)
            print(f"| {path} | {name} | {100 * report['miou']:.1f} | {by_condition} |", flush=True)


if __name__ == "__main__":
    main()
