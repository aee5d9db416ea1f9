"""Per-head losses and the probability view every method reads.

- softmax head: class logits; probabilities = softmax; losses = CE (supervised) and the U2PL
  form ``lambda_u * mean(SCE over reliable pixels)`` (unsupervised; plain masked CE when U2PL
  is off, since ``lambda_u`` then only renormalises the mean);
- ECOC head: bit logits; class scores = soft-Hamming decoding; probabilities = softmax of the
  scores (one bit of distance = a factor e), used for entropy, confidence and the ELN input;
  supervised targets = ground-truth codewords, unsupervised targets = hybrid labels from the
  teacher's bits (reliable bit mining), both through ``ecoc_loss`` weighted by the filters.
  The mining runs on the teacher's /4 bit map, where the head predicts, and the hybrid bits
  are upsampled by nearest neighbour (measured: 4.4 s per batch of 8 at 128x256 on one core
  at full resolution, 0.18 s at /4);
- prototype head (DeS4): scaled cosine logits, treated as class logits.

With ``train.class_balance`` p > 0 the supervised loss weights each labeled pixel by
:func:`class_balanced_weights`, for every head (CE, or ``ecoc_loss``'s pixel weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segloop.params import Params
from segloop.taxonomy import IGNORE_INDEX
from training.methods.ecoc import ecoc_loss, hybrid_bits, reliable_bit_mask
from training.methods.u2pl import unsupervised_loss
from training.models import SegmentationModel


def class_balanced_weights(labels: torch.Tensor, power: float) -> torch.Tensor:
    """Pixel weights ``n_y^-p`` with ``n_y`` the batch's pixel count of the pixel's class,
    scaled to mean 1 over the labeled pixels (0 where ignored), so the loss keeps its scale
    and at ``p = 1`` every class present carries the same total weight."""
    valid = labels != IGNORE_INDEX
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    counts = torch.bincount(safe[valid], minlength=int(safe.max()) + 1).float()
    weights = counts.clamp_min(1.0).pow(-power)[safe] * valid
    return weights * (valid.sum() / weights.sum().clamp_min(1e-12))


class HeadObjective:
    def __init__(self, model: SegmentationModel, params: Params) -> None:
        self.kind = params.model.head
        self.model = model
        self.ecoc = params.methods.ecoc
        u2pl = params.methods.u2pl
        self.eta = u2pl.eta if u2pl.enabled else 1.0
        self.sce = u2pl.sce_weight if u2pl.enabled else 0.0
        self.class_balance = params.train.class_balance

    def _codebook(self) -> torch.Tensor:
        codebook = self.model.head.codebook
        assert isinstance(codebook, torch.Tensor)
        return codebook

    def probabilities(self, raw_up: torch.Tensor) -> torch.Tensor:
        """B x C x H x W class probabilities from upsampled raw head outputs."""
        return F.softmax(self.model.head.class_scores(raw_up).float(), dim=1)

    def confidence(self, raw_up: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Max probability; for ECOC the mean bit confidence ``mean_k max(p_k, 1 - p_k)``,
        computed as ``sigmoid(|z_k|)`` (``sigmoid(-z) = 1 - sigmoid(z)``: two passes over the
        full-resolution bits instead of four)."""
        if self.kind == "ecoc":
            return torch.sigmoid(raw_up.float().abs()).mean(dim=1)
        return probs.amax(dim=1)

    def supervised(self, raw_up: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != IGNORE_INDEX
        balanced = self.class_balance > 0
        if self.kind != "ecoc":
            scores = self.model.head.class_scores(raw_up).float()
            if not balanced:
                return F.cross_entropy(scores, labels, ignore_index=IGNORE_INDEX)
            pixel_ce = F.cross_entropy(scores, labels, ignore_index=IGNORE_INDEX, reduction="none")
            weights = class_balanced_weights(labels, self.class_balance)
            return (pixel_ce * weights).sum() / valid.sum().clamp_min(1)
        weights = class_balanced_weights(labels, self.class_balance) if balanced else valid.float()
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        return ecoc_loss(
            raw_up.float(),
            None,
            safe,
            weights,
            self._codebook(),
            self.ecoc.pcd_weight,
            self.ecoc.pcc_weight,
            self.ecoc.tau,
        )

    @torch.no_grad()
    def teacher_targets(
        self, teacher_raw: torch.Tensor, size: torch.Size | tuple[int, int]
    ) -> torch.Tensor | None:
        """Per-pixel training targets beyond the pseudo-label: the ECOC hybrid bits (mined
        on the /4 map, nearest-upsampled to ``size``); None for other heads."""
        if self.kind != "ecoc":
            return None
        codebook = self._codebook()
        bit_probs = torch.sigmoid(teacher_raw.float())
        mask, top = reliable_bit_mask(
            bit_probs, codebook, self.ecoc.candidates, self.ecoc.bit_threshold
        )
        return F.interpolate(hybrid_bits(bit_probs, codebook, mask, top), size=size, mode="nearest")

    def unsupervised(
        self,
        raw_up: torch.Tensor,
        pseudo: torch.Tensor,
        reliable: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.kind != "ecoc":
            scores = self.model.head.class_scores(raw_up).float()
            return unsupervised_loss(scores, pseudo, reliable, self.eta, self.sce)
        assert targets is not None
        return ecoc_loss(
            raw_up.float(),
            targets,
            pseudo,
            reliable.float(),
            self._codebook(),
            self.ecoc.pcd_weight,
            self.ecoc.pcc_weight,
            self.ecoc.tau,
        )
