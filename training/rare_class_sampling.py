"""Rare-class sampling (RCS) of labeled frames, DAFormer's (Hoyer et al., CVPR 2022, Eq. 5-6),
which the ECOCSeg authors' code trains with (docs in ../shared/methods/ecocseg.md, 2.6).

Each labeled item of a batch first draws a class ``c`` with

    P(c) = exp((1 - f_c) / T) / sum_c' exp((1 - f_c') / T)                        (Eq. 5)

where ``f_c`` is class c's share of the labeled pixels and ``T`` the temperature, then a
frame uniformly among those holding more than ``min_pixels`` pixels of ``c`` (Eq. 6), then
crops it: the random crop is redrawn, up to ``training.data.CROP_TRIES`` times in all,
until it holds more than ``min_crop_ratio * min_pixels`` pixels of ``c`` (the last draw is
kept otherwise).

Choices where the paper is silent, following the authors' code (``uda_dataset.py``):
classes enter the softmax only if at least one frame holds them above ``min_pixels`` (the
code asserts every class does; here the others are left out and named); ``f_c`` is over the
eligible classes' pixels. ``min_pixels`` is a pixel count: DAFormer's 3000 is for 1024x512
Cityscapes crops; for the embedded 128x256 frames 3000/16 = 187 would leave traffic lights
and signs out (no labeled frame holds more than 200 / 300 pixels of them), so the default is
32 (params.yaml).

Like :class:`training.data.StepSampler`, the sampler is a
:class:`training.data.StepBatches`: a resumed run draws what an uninterrupted one draws.
"""

from __future__ import annotations

import numpy as np

from training.data import StepBatches


def class_probabilities(pixel_counts: np.ndarray, temperature: float) -> np.ndarray:
    """Eq. 5: ``softmax((1 - f) / T)`` with ``f = pixel_counts / pixel_counts.sum()``."""
    share = pixel_counts / pixel_counts.sum()
    logits = (1.0 - share) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


class RareClassPlan:
    """Which classes RCS draws, with what probability, and the frames that hold each."""

    def __init__(self, counts: np.ndarray, temperature: float, min_pixels: int) -> None:
        eligible = counts > min_pixels  # N x C
        self.classes = np.flatnonzero(eligible.any(axis=0))
        self.left_out = np.flatnonzero(~eligible.any(axis=0) & (counts.sum(axis=0) > 0))
        if self.classes.size == 0:
            raise ValueError(
                f"rare-class sampling: no labeled frame holds more than {min_pixels} pixels "
                "of any class; lower train.rare_class_sampling.min_pixels"
            )
        self.probabilities = class_probabilities(counts[:, self.classes].sum(axis=0), temperature)
        self.frames = [np.flatnonzero(eligible[:, c]) for c in self.classes]

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """(frame index, class) for one item."""
        k = int(rng.choice(len(self.classes), p=self.probabilities))
        frames = self.frames[k]
        return int(frames[rng.integers(len(frames))]), int(self.classes[k])


class RareClassSampler(StepBatches):
    """Batches of (frame index, augmentation seed, drawn class);
    :class:`training.data.LabeledFrames` recrops toward the class."""

    def __init__(
        self, plan: RareClassPlan, batch_size: int, seed: int, steps: int, start: int = 0
    ) -> None:
        super().__init__(batch_size, seed, steps, start)
        self.plan = plan

    def batch(self, step: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for j in range(self.batch_size):
            rng = np.random.default_rng([self.seed, step, j])
            index, cls = self.plan.draw(rng)
            out.append((index, int(rng.integers(2**31)), cls))
        return out
