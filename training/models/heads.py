"""Classifier heads: decoder feature -> raw outputs -> class scores.

- :class:`SoftmaxHead`: per-pixel linear classifier; raw outputs are class logits.
- :class:`EcocHead`: K sigmoid bits decoded by soft Hamming distance to each class codeword
  (ECOCSeg); decoding is a fixed 1x1 convolution, so it exports to ONNX as such.
- :class:`PrototypeHead`: scaled cosine similarity to non-learnable class prototypes (DeS4).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.methods.ecoc import decode_scores


class ClassifierHead(nn.Module):
    """A head maps the decoder feature to raw outputs; ``class_scores`` turns (upsampled) raw
    outputs into one score per class, whose argmax is the prediction."""

    num_outputs: int

    def class_scores(self, raw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SoftmaxHead(ClassifierHead):
    """Per-pixel linear classifier; its outputs are class logits (softmax gives P)."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.num_outputs = num_classes

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(feature))

    def class_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


class EcocHead(ClassifierHead):
    """K-bit sigmoid head; ``class_scores`` decodes bit logits to soft-Hamming class scores.

    The bits are one 1x1 convolution of the decoder feature, the softmax head's shape, so
    that heads compare at equal capacity. The poster does not give the head; the authors' code
    puts a 3x3 conv + BN + ReLU + dropout before the 1x1 (docs/METHODS.md has the probe that
    weighed it)."""

    codebook: torch.Tensor

    def __init__(self, channels: int, codebook: np.ndarray, dropout: float) -> None:
        super().__init__()
        self.register_buffer("codebook", torch.as_tensor(codebook, dtype=torch.float32))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels, codebook.shape[1], 1)
        self.num_outputs = codebook.shape[1]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(feature))

    def class_scores(self, bit_logits: torch.Tensor) -> torch.Tensor:
        return decode_scores(torch.sigmoid(bit_logits), self.codebook)


class PrototypeHead(ClassifierHead):
    """Cosine classifier over buffer prototypes (C x D); no learnable parameters."""

    prototypes: torch.Tensor

    def __init__(self, channels: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("prototypes", F.normalize(torch.randn(num_classes, channels), dim=1))
        self.scale = scale
        self.num_outputs = num_classes

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        weight = F.normalize(self.prototypes, dim=1)[:, :, None, None]
        return self.scale * F.conv2d(F.normalize(feature, dim=1), weight)

    def class_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits
