"""Labeled / unlabeled / val split files (``segloop data split``).

The split directory holds ``labeled.txt``, ``unlabeled.txt`` and ``val.txt`` (one frame key a
line, relative to the dataset root) and ``split.json`` with the seed, fraction and conditions
that made them, so a split is reproducible and self-describing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segloop.atomic_files import write_json_atomic, write_text_atomic
from segloop.datasets import Layout, Sample, discover, sample_for_key
from segloop.errors import DataError
from segloop.params import DataParams

SPLIT_NAMES = ("labeled", "unlabeled", "val")


@dataclass(frozen=True)
class Split:
    labeled: list[str]
    unlabeled: list[str]
    val: list[str]


def read_conditions(root: Path) -> dict[str, str]:
    """Frame key -> condition, from the dataset's ``conditions.csv`` (empty if absent)."""
    path = root / "conditions.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {row["image"]: row["condition"] for row in csv.DictReader(handle)}


def make_split(data: DataParams) -> Split:
    """Choose the labeled frames: ``fraction`` of all train frames, drawn (seeded) from the
    frames whose condition is in ``labeled_conditions`` when that is set."""
    params = data.split
    train = [s.key for s in discover(data.root, data.layout, "train")]
    val = [s.key for s in discover(data.root, data.layout, "val")]
    if not train:
        raise DataError(f"{data.root}: no training frames found for the {data.layout} layout")
    rng = np.random.default_rng(params.seed)
    if not val:
        if data.layout == "cityscapes":
            raise DataError(f"{data.root}: no frames under leftImg8bit/val")
        held = rng.permutation(len(train))[: max(1, round(params.val_fraction * len(train)))]
        val = sorted(train[i] for i in held)
        train = sorted(set(train) - set(val))
    eligible = train
    if params.labeled_conditions is not None:
        conditions = read_conditions(data.root)
        if not conditions:
            raise DataError(
                f"{data.root}: data.split.labeled_conditions is set but the dataset has no "
                "conditions.csv; set it to null for a dataset without condition tags"
            )
        wanted = set(params.labeled_conditions)
        eligible = [k for k in train if conditions.get(k) in wanted]
    count = max(1, round(params.fraction * len(train)))
    if count > len(eligible):
        raise DataError(
            f"fraction {params.fraction:g} asks for {count} labeled frames but only "
            f"{len(eligible)} frames match labeled_conditions {params.labeled_conditions}"
        )
    chosen = rng.choice(len(eligible), size=count, replace=False)
    labeled = sorted(eligible[i] for i in chosen)
    unlabeled = sorted(set(train) - set(labeled))
    return Split(labeled=labeled, unlabeled=unlabeled, val=sorted(val))


def write_split(split: Split, data: DataParams) -> Path:
    out = data.split.dir
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_NAMES:
        keys: list[str] = getattr(split, name)
        write_text_atomic(out / f"{name}.txt", "".join(f"{k}\n" for k in keys))
    meta = {
        "root": str(data.root),
        "layout": data.layout,
        "seed": data.split.seed,
        "fraction": data.split.fraction,
        "labeled_conditions": data.split.labeled_conditions,
        "counts": {name: len(getattr(split, name)) for name in SPLIT_NAMES},
    }
    write_json_atomic(out / "split.json", meta)
    return out


def read_split(split_dir: Path, name: str) -> list[str]:
    path = split_dir / f"{name}.txt"
    if not path.exists():
        raise DataError(f"{path}: split file not found; run 'segloop data split' first")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def split_samples(data: DataParams, name: str, with_masks: bool) -> list[Sample]:
    """Samples of a split; ``with_masks=False`` never exposes ground-truth paths."""
    root: Path = data.root
    layout: Layout = data.layout
    samples = [
        sample_for_key(root, layout, key, with_mask=with_masks)
        for key in read_split(data.split.dir, name)
    ]
    missing = [s.image for s in samples if not s.image.exists()]
    if missing:
        raise DataError(
            f"{missing[0]}: listed in {name}.txt but missing ({len(missing)} missing in all)"
        )
    return samples
