"""DeepLabV3+ (Chen et al., ECCV 2018) with swappable classifier and projection heads.

Encoder features at the output stride go through ASPP (1x1, three atrous 3x3 branches and image
pooling, all depthwise-separable as in the paper's Xception variant), are upsampled to /4,
fused with projected low-level features and refined by two separable 3x3 convolutions. The
classifier head maps that feature to class scores; the projection head maps it to an embedding
for contrastive methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        self.channels = channels

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(
            self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False
        )
        return self.fuse(torch.cat([context, self.low(low)], dim=1))


class SoftmaxHead(nn.Module):
    """Per-pixel linear classifier; its outputs are class logits (softmax gives P)."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.num_outputs = num_classes

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(feature))


class ProjectionHead(nn.Sequential):
    """Two 1x1 convolutions with a ReLU between (ELN §3.3, U2PL): feature -> embedding."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True), nn.Conv2d(channels, dim, 1)
        )


class SegmentationModel(nn.Module):
    """backbone -> DeepLabV3+ decoder -> head; ``forward`` gives scores at input size."""

    def __init__(
        self,
        backbone: nn.Module,
        decoder: DeepLabV3PlusDecoder,
        head: nn.Module,
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

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        scores = self.head(self.decode(image))
        return F.interpolate(scores, size=image.shape[2:], mode="bilinear", align_corners=False)
