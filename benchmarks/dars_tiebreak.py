"""Diagnostic: can the ELN's reliability break DARS's confidence ties better than chance?

Reads a predicted pool (``label/``, ``confidence/``, ``reliability/`` from ``segloop predict``)
and its ground truth, and keeps each class's DARS budget (alpha x pool pixels x the labeled
prior, the priors read from the pool's ``selection.json``) by an exact per-class ranking:
confidence with random ties (what DARS does), confidence with ties broken by reliability,
the ELN mask before or after, and reliability alone. Prints the share of kept pixels whose
label is right and the coverage. Holds the whole pool in memory (2625 128x256 frames: about
0.4 GB), and the exact sorts take minutes per variant.

    python benchmarks/dars_tiebreak.py runs/ablation/loop/seed1/pool \
        runs/ablation/loop/seed1/pseudo/selection.json runs/ablation-code/data/embedded
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

Key = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"{path}: missing or unreadable")
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pool", type=Path, help="label/, confidence/, reliability/ folders")
    parser.add_argument("selection", type=Path, help="selection.json with the class priors")
    parser.add_argument("data", type=Path, help="the Cityscapes-layout root with gtFine/")
    parser.add_argument("--alpha", type=float, default=0.2)
    args = parser.parse_args()
    summary = json.loads(args.selection.read_text())
    prior = np.array([c["prior"] for c in summary["classes"].values()])
    keys = sorted(
        str(p.relative_to(args.pool / "label")) for p in (args.pool / "label").rglob("*.png")
    )

    def load(key: str) -> tuple[np.ndarray, ...]:
        truth = key.replace("leftImg8bit/", "gtFine/", 1).replace(
            "_leftImg8bit.png", "_gtFine_labelTrainIds.png"
        )
        maps = [_read(args.pool / name / key) for name in ("label", "confidence", "reliability")]
        return (*maps, _read(args.data / truth))

    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(load, keys))
    label, confidence, reliability, truth = (
        np.stack([f[i] for f in frames]).ravel() for i in range(4)
    )
    targets = args.alpha * label.size * prior
    tie = np.random.default_rng(0).random(label.size).astype(np.float32)
    everything = np.ones(label.size, bool)
    reliable = reliability > 127

    def select(eligible: np.ndarray, key: Key) -> np.ndarray:
        keep = np.zeros(label.size, bool)
        for j in range(len(prior)):
            idx = np.flatnonzero((label == j) & eligible)
            n = int(np.rint(min(targets[j], idx.size)))
            if n:
                keep[idx[np.lexsort((tie[idx], *key(idx)))[-n:]]] = True  # last key primary
        return keep

    variants: list[tuple[str, np.ndarray, Key, bool]] = [
        (
            "confidence, random ties; then ELN mask (as built)",
            everything,
            lambda i: (confidence[i],),
            True,
        ),
        (
            "confidence, ties by reliability; then ELN mask",
            everything,
            lambda i: (reliability[i], confidence[i]),
            True,
        ),
        ("ELN mask first; confidence, random ties", reliable, lambda i: (confidence[i],), False),
        ("reliability only; then ELN mask", everything, lambda i: (reliability[i],), True),
    ]
    labeled = truth != 255
    print(
        f"{args.pool}: {len(keys)} frames, {100 * (confidence == 255).mean():.1f}% of pixels "
        "at confidence level 255"
    )
    for name, eligible, key, mask_after in variants:
        keep = select(eligible, key)
        if mask_after:
            keep &= reliable
        kept = keep & labeled
        print(
            f"{name:52s} correct {100 * (label[kept] == truth[kept]).mean():.2f}%  "
            f"coverage {100 * kept.sum() / labeled.sum():.2f}%"
        )


if __name__ == "__main__":
    main()
