"""Shared fixtures: tiny datasets built inside the tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segloop.params import Params, load_params


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_gray(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), mask)


def make_cityscapes(
    root: Path,
    frames: dict[str, int],
    size: tuple[int, int] = (16, 32),
    suffix: str = "_gtFine_labelTrainIds.png",
) -> list[str]:
    """Write a Cityscapes-layout dataset of random frames; returns the image keys."""
    rng = np.random.default_rng(0)
    keys = []
    for split, count in frames.items():
        for i in range(count):
            stem = f"city_{i:06d}_000019"
            image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            mask = rng.integers(0, 19, size, dtype=np.uint8)
            key = f"leftImg8bit/{split}/city/{stem}_leftImg8bit.png"
            write_rgb(root / key, image)
            write_gray(root / "gtFine" / split / "city" / f"{stem}{suffix}", mask)
            keys.append(key)
    return keys


def tiny_overrides(root: Path) -> list[str]:
    """A tiny embedded dataset under ``root`` (48 + 8 frames of 32x64) and a tiny model."""
    return [
        f"data.root={root / 'data'}",
        f"data.split.dir={root / 'splits'}",
        "data.synth.height=32",
        "data.synth.width=64",
        "data.synth.train_frames=48",
        "data.synth.val_frames=8",
        "data.synth.workers=1",
        "data.split.fraction=1/4",
        "model.tiny_widths=[8,8,16,16]",
        "model.decoder_channels=16",
        "model.low_level_channels=8",
        "model.projection_dim=8",
        "model.aspp_rates=[1,2,3]",
        "model.eln.decoder_channels=16",
        "train.crop=[32,64]",
        "train.batch_size=4",
        "train.warmup_steps=2",
        "train.threads=1",
        "train.device=cpu",
    ]


@pytest.fixture
def tiny_params(tmp_path: Path) -> Params:
    """Params for the tiny dataset under tmp_path, training into tmp_path/run."""
    return load_params(None, [*tiny_overrides(tmp_path), f"train.out_dir={tmp_path / 'run'}"])
