"""A tiny residual backbone for CPU defaults (about 0.3M parameters at widths 16/32/64/128).

Stem (3x3, stride 2) then three BasicBlock stages at /4, /8 and /16; for output stride 8 the
last stage is dilated instead of strided. Returns (/4 features, deepest features).
"""

from __future__ import annotations

import torch
from torch import nn

from training.models.resnet import BasicBlock, conv3x3


def _stage(cin: int, cout: int, stride: int, dilation: int) -> BasicBlock:
    down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return BasicBlock(cin, cout, stride, dilation, down)


class TinyBackbone(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        widths: tuple[int, int, int, int] = (16, 32, 64, 128),
        output_stride: int = 8,
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(
            conv3x3(in_channels, w0, 2), nn.BatchNorm2d(w0), nn.ReLU(inplace=True)
        )
        self.stage1 = _stage(w0, w1, 2, 1)
        strided3 = output_stride >= 16
        strided4 = output_stride >= 32
        self.stage2 = _stage(w1, w2, 2, 1)
        self.stage3 = _stage(w2, w3, 2 if strided3 else 1, 1 if strided3 else 2)
        self.extra = None if not strided4 else _stage(w3, w3, 2, 1)
        self.channels = (w1, w3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.stage1(self.stem(x))
        high = self.stage3(self.stage2(low))
        if self.extra is not None:
            high = self.extra(high)
        return low, high
