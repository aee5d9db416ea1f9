"""The Error Localization Network (Kwon & Kwak, CVPR 2022, §3.2, Eq. 4).

Input: the image concatenated with a prediction's class probabilities ``P`` and per-pixel
entropy ``E = -sum_c P_c log P_c`` (natural log), ``3 + C + 1`` channels. Output: one logit
per pixel whose sigmoid is the probability that the prediction's argmax is correct.

The paper feeds ``P`` (probabilities); the authors' code feeds raw logits. We follow the paper
so the input scale does not depend on the classifier head (softmax, ECOC, prototype).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.models.deeplab import SegmentationModel


def eln_inputs(image: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``X ⊕ P ⊕ E`` (Eq. 4), gradients stopped: the ELN never trains the segmenter."""
    probs = probs.detach()
    entropy = -(probs * torch.log(probs.clamp_min(1e-8))).sum(dim=1, keepdim=True)
    return torch.cat([image.detach(), probs, entropy], dim=1)


class ErrorLocalizationNetwork(SegmentationModel):
    """A one-output DeepLabV3+ over ``eln_inputs``; ``forward`` returns correctness logits."""

    def predict_reliability(self, image: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """sigmoid of the ELN logit: per-pixel probability that argmax(probs) is right."""
        return torch.sigmoid(self(eln_inputs(image, probs)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.decode(inputs))
        return F.interpolate(logits, size=inputs.shape[2:], mode="bilinear", align_corners=False)
