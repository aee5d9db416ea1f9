"""DeepLabV3+ (Chen et al., ECCV 2018) with swappable classifier and projection heads.

Encoder features at the output stride go through ASPP (1x1, three atrous 3x3 branches and image
pooling, all depthwise-separable as in the paper's Xception variant), are upsampled to /4,
fused with projected low-level features and refined by two separable 3x3 convolutions. The
classifier head maps that feature to class scores; the projection head maps it to an embedding
for contrastive methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.models.heads import ClassifierHead


def conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally atrous) then pointwise 1x1, each with BN + ReLU."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            conv_bn_relu(cin, cout),
        )


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int], dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout), *(SeparableConv(cin, cout, r) for r in rates)]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(conv_bn_relu(cout * 5, cout), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """(low /4, high /OS) -> fused feature at /4 with ``channels`` channels."""

    def __init__(
        self,
        in_channels: tuple[int, int],
        channels: int,
        low_channels: int,
        rates: tuple[int, int, int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels[1], channels, rates, dropout)
        self.low = conv_bn_relu(in_channels[0], low_channels)
        self.fuse = nn.Sequential(
            SeparableConv(channels + low_channels, channels), SeparableConv(channels, channels)
        )
        self.in_channels = in_channels
        self.channels = channels

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(
            self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False
        )
        return self.fuse(torch.cat([context, self.low(low)], dim=1))


class ProjectionHead(nn.Sequential):
    """Two 1x1 convolutions with a ReLU between (ELN §3.3, U2PL): feature -> embedding."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True), nn.Conv2d(channels, dim, 1)
        )


@dataclass
class SegmentationOutput:
    """What methods need from one forward pass, all at the decoder's /4 resolution: the
    head's raw output (class logits, ECOC bit logits or prototype logits), the decoder
    feature and the projection embedding."""

    raw: torch.Tensor
    feature: torch.Tensor
    embedding: torch.Tensor | None
    backbone: tuple[torch.Tensor, torch.Tensor]


class SegmentationModel(nn.Module):
    """backbone -> DeepLabV3+ decoder -> head; ``forward`` gives class scores at input size.

    Every head has ``forward(feature) -> raw`` and ``class_scores(raw) -> C scores``; raw
    outputs are upsampled before decoding.
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: DeepLabV3PlusDecoder,
        head: ClassifierHead,
        projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.head = head
        self.projection = projection

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        """The /4 decoder feature that every head reads."""
        low, high = self.backbone(image)
        return self.decoder(low, high)

    def forward_parts(self, image: torch.Tensor) -> SegmentationOutput:
        low, high = self.backbone(image)
        feature = self.decoder(low, high)
        embedding = self.projection(feature) if self.projection is not None else None
        return SegmentationOutput(self.head(feature), feature, embedding, (low, high))

    def scores_at(self, raw: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        """Class scores at ``size`` from the head's raw /4 output."""
        up = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
        return self.head.class_scores(up)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.scores_at(self.head(self.decode(image)), image.shape[2:])
