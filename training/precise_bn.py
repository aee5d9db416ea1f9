"""Precise BatchNorm statistics for the model a semi-supervised run saves (``methods.precise_bn``).

Under mean teacher the student runs in train mode on the labeled batch and on the strong view
of the pool (CutMix, colour jitter, grayscale, blur). Both forwards update its BatchNorm
running statistics, and the teacher's buffers follow the student's by EMA
(:mod:`training.methods.ema`). So the teacher that is validated, saved and exported normalises
clean frames with statistics half made of strongly augmented ones. PreciseBN (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, Sec. 3) recomputes them with the final weights: every
BatchNorm layer's running mean and variance are reset and set to the equal-weight average of
the batch statistics over B batches,

    mu = (1/B) sum_b mu_b,    sigma^2 = (1/B) sum_b s_b^2    (s_b^2 unbiased, as BatchNorm keeps it)

which is PyTorch's cumulative moving average (``momentum=None``). Averaging the batch variances
leaves out the spread of the batch means between batches; PreciseBN and
``torch.optim.swa_utils.update_bn`` make the same approximation.

Choices (their measurements are in docs/RESULTS.md, "Semi-supervised ablation"):

- the frames are the labeled split's, without augmentation: statistics of the pool's frames
  cost every semi-supervised checkpoint measured, while the labeled frames' gave back the
  day and dusk mIoU the strong views had cost;
- each frame is padded (black, as training pads) and centre-cropped to ``train.crop``, so the
  batches have training's shape and memory;
- the whole model runs in train mode, as in training, so the layers after a dropout see its
  noise as they did then; the dropout draws from a fixed seed in a forked RNG, so the result
  is reproducible and the caller's random streams are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from training.data import center_crop_transform, to_tensor


def frame_batches(
    images: Sequence[np.ndarray], crop: tuple[int, int], batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """Normalised B x 3 x crop batches of uint8 RGB frames, each padded and centre-cropped
    to ``crop``, in order; the last may be smaller."""
    view = center_crop_transform(crop)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        yield torch.stack([to_tensor(view(image=image)["image"]) for image in chunk]).to(device)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterator[torch.Tensor], seed: int = 0) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``batches``
    (the equations above); weights are untouched. Returns the number of batches."""
    first = next(batches, None)
    if first is None:
        raise ValueError("recomputing BatchNorm statistics needs at least one batch")
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: each batch weighs 1/B
    model.train()
    devices = [first.device] if first.device.type == "cuda" else []
    count = 0
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        batch: torch.Tensor | None = first
        while batch is not None:
            model(batch)
            count += 1
            batch = next(batches, None)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    model.train(was_training)
    return count
