"""Torch datasets over the validated readers in :mod:`segloop.datasets`.

Batches are a pure function of (seed, step): :class:`StepSampler` picks the frames of step
``t`` from a seeded per-epoch permutation and gives each its own augmentation seed, so a run
resumed from a checkpoint at step ``t`` sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.progress import track
from torch.utils.data import Dataset, Sampler

from segloop.datasets import Sample, read_image, read_mask, read_pair
from segloop.errors import DataError
from segloop.params import TrainParams
from segloop.taxonomy import Taxonomy

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A

CROP_TRIES = 10  # crop draws toward a rare-class sampler's class (DAFormer's retries)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(params: TrainParams) -> A.Compose:
    """Random scale, pad (ignore label) and crop, flip, colour jitter; masks use nearest."""
    crop_h, crop_w = params.crop
    low, high = params.scale
    jitter = params.color_jitter
    return A.Compose(
        [
            A.RandomScale(
                scale_limit=(low - 1.0, high - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            ),
            A.PadIfNeeded(crop_h, crop_w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=255),
            A.RandomCrop(crop_h, crop_w),
            A.HorizontalFlip(p=0.5 if params.hflip else 0.0),
            A.ColorJitter(jitter, jitter, jitter, 0.0, p=0.8 if jitter > 0 else 0.0),
        ]
    )


def center_crop_transform(crop: tuple[int, int]) -> A.Compose:
    """The deterministic counterpart of ``train_transform``'s geometry: pad with black where
    the frame is smaller than ``crop`` (split evenly, the extra row or column below/right),
    then take the ``crop``-sized centre."""
    crop_h, crop_w = crop
    return A.Compose(
        [
            A.PadIfNeeded(crop_h, crop_w, border_mode=cv2.BORDER_CONSTANT, fill=0),
            A.CenterCrop(crop_h, crop_w),
        ]
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float32, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


class LabeledFrames(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Image/mask pairs, validated (and decoded into memory) once at construction.

    ``on_bad_file="skip"`` leaves unreadable or inconsistent pairs out and records them in
    ``skipped``; ``"error"`` raises the first :class:`DataError`.

    Items are (index, augmentation seed), or (index, seed, class) from rare-class sampling:
    then the transform is redrawn with seeds ``seed + 1, ...`` (``CROP_TRIES`` draws in all)
    until the crop holds more than ``min_crop_pixels`` pixels of the class.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        taxonomy: Taxonomy,
        transform: A.Compose | None,
        on_bad_file: str = "error",
        min_crop_pixels: float = 0.0,
    ) -> None:
        self.transform = transform
        self.min_crop_pixels = min_crop_pixels
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.keys: list[str] = []
        self.skipped: dict[str, str] = {}
        for sample in track(samples, description="reading frames", transient=True):
            try:
                self.pairs.append(read_pair(sample, taxonomy))
                self.keys.append(sample.key)
            except DataError as exc:
                if on_bad_file == "error":
                    raise
                self.skipped[sample.key] = str(exc)
        if not self.pairs:
            raise DataError(
                "no usable labeled frames"
                + (f" ({len(self.skipped)} skipped as bad)" if self.skipped else "")
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item[0], item[1]
        wanted = item[2] if len(item) > 2 else None
        image, mask = self.pairs[index]
        if self.transform is not None:
            for attempt in range(1 if wanted is None else CROP_TRIES):
                self.transform.set_random_seed(seed + attempt)
                out = self.transform(image=image, mask=mask)
                if wanted is None or np.count_nonzero(out["mask"] == wanted) > self.min_crop_pixels:
                    break
            image, mask = out["image"], out["mask"]
        return to_tensor(image), torch.from_numpy(np.ascontiguousarray(mask)).long()


class StepBatches(Sampler[list[tuple[int, ...]]]):
    """Yields ``batch(step)`` for steps ``start..steps-1``; a batch is a pure function of
    (seed, step), so a resumed run draws what an uninterrupted one draws."""

    def __init__(self, batch_size: int, seed: int, steps: int, start: int = 0) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.steps, self.start = steps, start

    def batch(self, step: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.steps - self.start


class StepSampler(StepBatches):
    """Batches of (frame index, augmentation seed): each frame once per seeded epoch."""

    def __init__(self, size: int, batch_size: int, seed: int, steps: int, start: int = 0):
        super().__init__(batch_size, seed, steps, start)
        self.size = size

    def batch(self, step: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for j in range(self.batch_size):
            position = step * self.batch_size + j
            epoch, offset = divmod(position, self.size)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            aug_seed = int(np.random.default_rng([self.seed, step, j]).integers(2**31))
            out.append((int(perm[offset]), aug_seed))
        return out


class UnlabeledFrames(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Pool images, decoded once, weakly augmented with the same geometry pipeline as labeled
    frames and no colour change.

    Items are (image, hidden truth, group). The truth is read only with ``taxonomy`` given
    (the benchmarks' pseudo-label measurement, ``train.measure_pseudo_labels``) and goes
    through the same geometry as the image; otherwise it is an empty tensor and the pool's
    ground truth, if any, is never read. ``groups`` gives each sample's group index (its
    condition, for distribution alignment); without it every frame is group 0.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: A.Compose,
        on_bad_file: str = "error",
        taxonomy: Taxonomy | None = None,
        groups: Sequence[int] | None = None,
    ) -> None:
        self.transform = transform
        self.images: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []
        self.groups: list[int] = []
        self.skipped: dict[str, str] = {}
        for i, sample in enumerate(track(samples, description="reading pool", transient=True)):
            try:
                image = read_image(sample.image)
            except DataError as exc:
                if on_bad_file == "error":
                    raise
                self.skipped[sample.key] = str(exc)
                continue
            self.images.append(image)
            self.groups.append(groups[i] if groups is not None else 0)
            if taxonomy is not None:  # never skipped: measuring must not change the pool
                if sample.mask is None:
                    raise DataError(
                        f"{sample.image}: no ground truth to measure pseudo-labels against "
                        "(train.measure_pseudo_labels needs a pool with masks)"
                    )
                self.truth.append(read_mask(sample.mask, taxonomy, image.shape[:2]))
        if not self.images:
            raise DataError("no usable unlabeled frames")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, seed = item
        self.transform.set_random_seed(seed)
        if not self.truth:
            image = self.transform(image=self.images[index])["image"]
            return to_tensor(image), torch.empty(0, dtype=torch.long), self.groups[index]
        out = self.transform(image=self.images[index], mask=self.truth[index])
        truth = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        return to_tensor(out["image"]), truth, self.groups[index]


def weak_transform(params: TrainParams) -> A.Compose:
    """The teacher's (weak) view: the labeled geometry pipeline without colour jitter."""
    return train_transform(params.model_copy(update={"color_jitter": 0.0}))


def pseudo_labeled_samples(samples: Sequence[Sample], folder: Path) -> list[Sample]:
    """Pool frames paired with offline pseudo-labels stored at ``folder / <frame key>``."""
    out = [Sample(key=s.key, image=s.image, mask=folder / s.key) for s in samples]
    missing = [s.mask for s in out if s.mask is not None and not s.mask.exists()]
    if missing:
        raise DataError(
            f"{missing[0]}: pseudo-label missing ({len(missing)} of {len(out)} "
            "frames have none); run 'segloop select' for this pool"
        )
    return out
