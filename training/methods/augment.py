"""Strong views for the student: photometric perturbation and CutMix.

Photometric (ELN §4.1, FixMatch-style): colour jitter, random grayscale, Gaussian blur,
applied per image on the de-normalised batch and re-normalised. CutMix (Yun et al. 2019, as
used by U2PL/UniMatch): one box of ``area`` of the image, random aspect, pasted from image
``(i + 1) mod B``; the same boxes mix pseudo-labels and masks so they stay aligned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.data import IMAGENET_MEAN, IMAGENET_STD


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return mean, std


def photometric(
    x: torch.Tensor,
    generator: torch.Generator,
    jitter: float = 0.4,
    grayscale_p: float = 0.2,
    blur_p: float = 0.5,
) -> torch.Tensor:
    """Per-image brightness/contrast/saturation jitter, grayscale and blur of a normalised
    batch (B x 3 x H x W); returns a normalised batch. Geometry is unchanged."""
    mean, std = _stats(x)
    img = (x * std + mean).clamp(0, 1)
    b = img.shape[0]

    def factor() -> torch.Tensor:
        r = torch.rand(b, 1, 1, 1, generator=generator).to(x.device)
        return 1.0 + jitter * (2.0 * r - 1.0)

    img = (img * factor()).clamp(0, 1)
    grey = img.mean(dim=(1, 2, 3), keepdim=True)
    img = ((img - grey) * factor() + grey).clamp(0, 1)
    luma = (0.299 * img[:, :1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:]).expand_as(img)
    img = ((img - luma) * factor() + luma).clamp(0, 1)
    to_grey = (torch.rand(b, generator=generator) < grayscale_p).to(x.device)
    img = torch.where(to_grey.view(b, 1, 1, 1), luma, img)
    blur = (torch.rand(b, generator=generator) < blur_p).to(x.device)
    if bool(blur.any()):
        kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device)
        kernel = (kernel[:, None] * kernel[None, :]) / 256.0
        blurred = F.conv2d(
            F.pad(img, (2, 2, 2, 2), mode="replicate"), kernel.expand(3, 1, 5, 5), groups=3
        )
        img = torch.where(blur.view(b, 1, 1, 1), blurred, img)
    return (img - mean) / std


def cutmix_masks(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    area: float = 0.5,
    p: float = 0.5,
) -> torch.Tensor:
    """B x H x W bool masks, True inside the box pasted from the partner image; an image is
    mixed with probability ``p``."""
    masks = torch.zeros(batch, height, width, dtype=torch.bool)
    for i in range(batch):
        if float(torch.rand(1, generator=generator)) >= p:
            continue
        aspect = math.exp(
            float(torch.empty(1).uniform_(math.log(0.5), math.log(2.0), generator=generator))
        )
        h = min(height, round(math.sqrt(area * height * width / aspect)))
        w = min(width, round(math.sqrt(area * height * width * aspect)))
        y = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        x = int(torch.randint(0, width - w + 1, (1,), generator=generator))
        masks[i, y : y + h, x : x + w] = True
    return masks


def apply_cutmix(tensor: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mix ``tensor`` (B x ... x H x W, or B x H x W) with its partner ``roll(-1)`` under masks."""
    partner = tensor.roll(-1, dims=0)
    m = masks.to(tensor.device)
    while m.dim() < tensor.dim():
        m = m.unsqueeze(1)
    return torch.where(m, partner, tensor)
