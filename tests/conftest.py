"""Shared fixtures: tiny datasets built inside the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from segloop.params import Params, load_params

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # tests import albumentations directly


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


@dataclass(frozen=True)
class TinyExport:
    """A tiny dataset, a random-weight checkpoint with an ELN, and its export directory."""

    root: Path
    params: Params
    checkpoint: Path
    export_dir: Path
    params_overrides: list[str]


def write_tiny_checkpoint(params: Params, path: Path, with_eln: bool = True) -> Path:
    """A checkpoint of an untrained model (and ELN): enough for export and labeling tests."""
    import torch

    from training.checkpoint import model_state, save_checkpoint
    from training.models import build_eln, build_model

    taxonomy = params.data.taxonomy.build()
    torch.manual_seed(0)
    model = build_model(params.model, taxonomy.num_classes).eval()
    state = model_state(model, params.model, taxonomy)
    if with_eln:
        state["eln"] = build_eln(params.model, taxonomy.num_classes).state_dict()
    save_checkpoint(path, state)
    return path


def make_tiny_export(
    root: Path, extra: list[str] | None = None, with_eln: bool = True
) -> TinyExport:
    from export.exporter import export_checkpoint
    from segloop.splits import make_split, write_split
    from segloop.synth import write_dataset

    overrides = [*tiny_overrides(root), f"export.out={root / 'export'}", *(extra or [])]
    params = load_params(None, overrides)
    if not (root / "splits" / "val.txt").exists():
        write_dataset(params.data.root, params.data.synth)
        write_split(make_split(params.data), params.data)
    checkpoint = write_tiny_checkpoint(params, root / "ckpt.pt", with_eln)
    export_checkpoint(params, checkpoint)
    return TinyExport(root, params, checkpoint, params.export.out, overrides)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> TinyExport:
    return make_tiny_export(tmp_path_factory.mktemp("tiny_export"))
