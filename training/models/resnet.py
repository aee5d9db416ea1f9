"""ResNet-18/34/50/101 with torchvision-compatible state-dict keys.

Module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...) match
``torchvision.models.resnet`` so a user's ImageNet checkpoint loads with
:func:`load_torchvision_weights`. Strides of ``layer3``/``layer4`` can be replaced by dilation
for output stride 16 or 8 (DeepLabV3 §3.1); unlike torchvision, BasicBlock supports dilation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from segloop.errors import SegloopError


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride, dilation)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, 1, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk returning (layer1 features at /4, layer4 features at output_stride)."""

    def __init__(self, name: str, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        block, layers = RESNET_SPECS[name]
        dilate = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}
        self.inplanes, self.dilation = 64, 1
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        d2, d3, d4 = dilate[output_stride]
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, d2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, d3)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, d4)
        self.channels = (64 * block.expansion, 512 * block.expansion)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        width: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != width * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, width * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(width * block.expansion),
            )
        mods: list[nn.Module] = [block(self.inplanes, width, stride, previous, downsample)]
        self.inplanes = width * block.expansion
        mods += [block(self.inplanes, width, 1, self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return low, self.layer4(self.layer3(self.layer2(low)))


def load_torchvision_weights(model: ResNet, path: Path) -> list[str]:
    """Load a torchvision ResNet state dict; returns the keys left at their initial values.

    ``fc.*`` is dropped. Where ``conv1`` takes other than 3 channels (the ELN), it keeps its
    random initialisation, as in the ELN authors' code.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise SegloopError(f"{path}: cannot load pretrained weights ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in skipped:
        state.pop(key)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise SegloopError(
            f"{path}: not a torchvision ResNet of this depth; unexpected keys such as "
            f"{result.unexpected_keys[:3]}"
        )
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if len(missing) > len(skipped) + 2:
        raise SegloopError(f"{path}: missing {len(missing)} backbone keys such as {missing[:3]}")
    return missing
