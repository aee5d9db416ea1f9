"""The modules that become the three exported graphs.

- ``teacher.onnx``: :class:`TeacherGraph`, normalised float32 N x 3 x H x W in, class scores
  N x C x H x W out (softmax logits, ECOC soft-Hamming scores or prototype logits: whatever
  the model's head gives; ``softmax`` of them is the class distribution in every case).
- ``eln.onnx``: the ELN itself, ``X ⊕ P ⊕ E`` (3 + C + 1 channels) in, one logit out.
- ``labeler.onnx``: :class:`LabelerGraph`, uint8 RGB frames N x H x W x 3 in; normalisation,
  the teacher, softmax, argmax, the ELN and the uint8 quantisation all inside, so only the
  compact maps leave the accelerator.
"""

from __future__ import annotations

import torch
from torch import nn

from training.confidence_levels import confidence_levels
from training.data import IMAGENET_MEAN, IMAGENET_STD
from training.models import ErrorLocalizationNetwork, SegmentationModel, eln_inputs

MEAN = IMAGENET_MEAN
STD = IMAGENET_STD


class TeacherGraph(nn.Module):
    def __init__(self, model: SegmentationModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class LabelerGraph(nn.Module):
    """frames -> (label, confidence[, reliability]), each N x H x W uint8:

    - ``P = softmax(scores)``; ``label = argmax_c P``;
    - ``confidence``: the level of ``max_c P = 1 / sum_c exp(s_c - max s)``, for an ECOC head
      of ``1 - d_SH`` of the winning codeword instead (``ClassifierHead.winner_confidence``);
      levels are linear in ``-ln(1 - c)`` (:mod:`segloop.confidence_levels`);
    - ``reliability = round(255 * sigmoid(ELN(X ⊕ P ⊕ E)))`` (ELN Eq. 4), the probability that
      the label is right; absent when the checkpoint has no ELN.

    The softmax is written out (max, subtract, exp, sum, divide) rather than as one Softmax
    op: ONNX Runtime's CPU Softmax over the channel axis of an NCHW tensor transposes it and
    took 68% of the labeler's time (ORT profiler, 128x256 frames, batch 8); the written-out
    form is elementwise and reductions only.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: SegmentationModel, eln: ErrorLocalizationNetwork | None) -> None:
        super().__init__()
        self.model = model
        self.eln = eln
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        image = (frames.permute(0, 3, 1, 2).float() - self.mean) / self.std
        scores = self.model(image)
        exp = torch.exp(scores - scores.amax(dim=1, keepdim=True))
        total = exp.sum(dim=1, keepdim=True)
        probs = exp / total
        label = scores.argmax(dim=1)
        confidence = self.model.head.winner_confidence(scores, total)
        outputs = [label.to(torch.uint8), confidence_levels(confidence)]
        if self.eln is not None:
            reliability = torch.sigmoid(self.eln(eln_inputs(image, probs)))[:, 0]
            outputs.append(torch.round(reliability * 255.0).to(torch.uint8))
        return tuple(outputs)
