"""Method components plugged into the one training loop.

Each component owns its extra modules and state and contributes through three hooks:
``labeled_losses`` (terms on the labeled batch), ``trusted`` (a pixel filter on the unlabeled
batch) and ``unlabeled_losses`` (terms on the unlabeled batch); ``after_step`` updates
non-gradient state. State is saved with the checkpoint so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segloop.params import Params
from segloop.pool_selection import labeled_histogram
from training.aux_decoder_activity import ELN_AUX_ACTIVE, ELN_MAIN_CE
from training.methods.des4 import unbiased_ce, update_prototypes
from training.methods.eln import (
    aux_indicators,
    balanced_bce,
    constrained_aux_loss,
    correctness,
    eln_mask,
    per_image_ce,
    pixel_contrastive_loss,
)
from training.methods.u2pl import U2PLContrast, entropy, entropy_partition, unreliable_fraction
from training.models import SegmentationModel, build_eln, eln_inputs
from training.models.deeplab import DeepLabV3PlusDecoder
from training.models.heads import PrototypeHead, SoftmaxHead


def downsample_labels(labels: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of B x H x W labels or masks to the /4 feature grid."""
    out = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
    return out.to(labels.dtype)


class AuxiliaryDecoder(nn.Module):
    """A freshly initialised copy of the main decoder architecture with a softmax head."""

    def __init__(self, model: SegmentationModel, params: Params, num_classes: int) -> None:
        super().__init__()
        m = params.model
        self.decoder = DeepLabV3PlusDecoder(
            model.decoder.in_channels,
            m.decoder_channels,
            m.low_level_channels,
            m.aspp_rates,
            m.dropout,
        )
        self.head = SoftmaxHead(m.decoder_channels, num_classes, m.dropout)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(low, high))


class ELNComponent:
    """ELN (Kwon & Kwak 2022): constrained auxiliary decoders simulate errors (Eq. 3); the
    ELN learns "is this prediction correct" on the main and auxiliary predictions of labeled
    images (Eqs. 4-6); on unlabeled images its rounded output masks pseudo-labels (Eq. 9) and
    a pixel contrastive loss runs over the pixels it accepts (Eq. 10)."""

    def __init__(
        self, model: SegmentationModel, params: Params, num_classes: int, device: torch.device
    ) -> None:
        self.cfg = params.methods.eln
        self.eln = build_eln(params.model, num_classes).to(device)
        self.aux = nn.ModuleList(
            [AuxiliaryDecoder(model, params, num_classes) for _ in self.cfg.aux_alphas]
        ).to(device)
        self.generator = torch.Generator().manual_seed(params.train.seed + 17)
        self.training_enabled = True
        # Eq. 3's per-step state for the history (not losses): the main CE and the fraction
        # of images each auxiliary decoder trained on; empty while the ELN is not trained.
        self.last_activity: dict[str, float] = {}

    def modules(self) -> dict[str, nn.Module]:
        return {"eln": self.eln, "eln_aux": self.aux}

    def parameters(self) -> list[nn.Parameter]:
        return [*self.eln.parameters(), *self.aux.parameters()]

    def labeled_losses(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        out: Any,
        scores_up: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Eq. 3 and Eqs. 5-6 on a labeled batch; ``scores_up`` are the main head's class
        scores at label resolution (decoded for ECOC), so every head is treated alike."""
        self.last_activity = {}
        if not self.training_enabled:
            return {}
        self.eln.train()
        low, high = (t.detach() for t in out.backbone)
        main_ce = per_image_ce(scores_up.detach(), labels)
        aux_scores = [
            F.interpolate(a(low, high), size=labels.shape[1:], mode="bilinear", align_corners=False)
            for a in self.aux
        ]
        aux_ce = [per_image_ce(s, labels) for s in aux_scores]
        indicators = aux_indicators(aux_ce, main_ce, list(self.cfg.aux_alphas))
        aux_loss = constrained_aux_loss(aux_ce, indicators)
        self.last_activity = {
            ELN_MAIN_CE: float(main_ce.mean()),
            **{f"{ELN_AUX_ACTIVE}_{k}": float(a.mean()) for k, a in enumerate(indicators)},
        }
        eln_loss = torch.zeros((), device=images.device)
        predictions = [F.softmax(s.detach().float(), dim=1) for s in (scores_up, *aux_scores)]
        for probs in predictions:
            correct, valid = correctness(probs.argmax(dim=1), labels)
            logits = self.eln(eln_inputs(images, probs))[:, 0]
            eln_loss = eln_loss + balanced_bce(logits, correct, valid)
        return {"eln_aux": aux_loss, "eln": eln_loss / len(predictions)}

    @torch.no_grad()
    def trusted(self, images: torch.Tensor, probs: torch.Tensor) -> torch.Tensor | None:
        if not self.cfg.mask:
            return None
        self.eln.eval()
        return eln_mask(self.eln(eln_inputs(images, probs))[:, 0])

    def unlabeled_losses(
        self,
        student_emb: torch.Tensor,
        teacher_emb: torch.Tensor,
        pseudo_small: torch.Tensor,
        reliable_small: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        if self.cfg.contrast_weight <= 0:
            return {}
        loss = pixel_contrastive_loss(
            student_emb,
            teacher_emb,
            pseudo_small,
            reliable_small,
            self.cfg.contrast_tau,
            self.cfg.contrast_samples,
            self.generator,
        )
        return {"eln_contrast": self.cfg.contrast_weight * loss}

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class U2PLComponent:
    """U2PL+: the entropy partition as a filter (Eq. 12, alpha_t annealed), optional
    prototypical denoising of the teacher's probabilities, and L_c (Eq. 10)."""

    def __init__(self, params: Params, num_classes: int, device: torch.device) -> None:
        self.cfg = params.methods.u2pl
        self.contrast = U2PLContrast(
            num_classes,
            params.model.projection_dim,
            device,
            anchors=self.cfg.anchors,
            negatives=self.cfg.negatives,
            tau=self.cfg.tau,
            r_l=self.cfg.rank_low,
            r_h=self.cfg.rank_high,
            delta_p=self.cfg.delta_p,
            queue_size=self.cfg.queue_size,
            prototype_momentum=self.cfg.prototype_momentum,
            seed=params.train.seed + 29,
        )

    def trusted(self, probs: torch.Tensor, valid: torch.Tensor, progress: float) -> torch.Tensor:
        alpha_t = unreliable_fraction(self.cfg.alpha0, progress)
        reliable, _ = entropy_partition(entropy(probs), valid, alpha_t)
        return reliable

    def contrast_loss(self, *args: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cfg.contrast_weight <= 0:
            return {}
        return {"u2pl_contrast": self.cfg.contrast_weight * self.contrast(*args)}

    def state(self) -> dict[str, Any]:
        q, p = self.contrast.queue, self.contrast.prototypes
        return {
            "memory": q.memory,
            "head": q.head,
            "size": q.size,
            "prototypes": p.vectors,
            "ready": p.ready,
            "generator": self.contrast.generator.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        q, p = self.contrast.queue, self.contrast.prototypes
        q.memory.copy_(state["memory"])
        q.head.copy_(state["head"])
        q.size.copy_(state["size"])
        p.vectors.copy_(state["prototypes"])
        p.ready.copy_(state["ready"])
        self.contrast.generator.set_state(state["generator"])


class DeS4Component:
    """DeS4: the teacher's decoder is trained on labeled data with the unbiased loss (Eq. 8)
    over an encoder that follows the student by EMA; prototypes shared by both heads move by
    MES + EMA (Eqs. 9-12). Without an unlabeled branch the student's own features drive MES."""

    def __init__(self, params: Params, class_ratio: torch.Tensor) -> None:
        self.cfg = params.methods.des4
        self.class_ratio = class_ratio
        self.generator = torch.Generator().manual_seed(params.train.seed + 31)
        self.last_teacher_output: tuple[torch.Tensor, torch.Tensor] | None = None

    def share_prototypes(self, student: SegmentationModel, teacher: SegmentationModel) -> None:
        """Make the teacher's head use the very tensor the student's head uses."""
        assert isinstance(student.head, PrototypeHead) and isinstance(teacher.head, PrototypeHead)
        teacher.head.prototypes = student.head.prototypes
        for module in (teacher.decoder, teacher.head):
            for p in module.parameters():
                p.requires_grad_(True)

    def labeled_losses(
        self, teacher: SegmentationModel | None, images: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if teacher is None:
            return {}
        teacher.decoder.train()
        with torch.no_grad():
            low, high = teacher.backbone(images)
        feature = teacher.decoder(low, high)
        raw = teacher.head(feature)
        up = F.interpolate(raw, size=labels.shape[1:], mode="bilinear", align_corners=False)
        self.last_teacher_output = (feature.detach(), raw.detach())
        return {"des4_unbiased": unbiased_ce(up, labels)}

    @torch.no_grad()
    def after_step(
        self, head: PrototypeHead, feature: torch.Tensor, raw: torch.Tensor, labels: torch.Tensor
    ) -> None:
        small = downsample_labels(labels, feature.shape[2:])
        update_prototypes(
            head,
            feature,
            raw,
            small,
            self.class_ratio,
            self.cfg.prototype_momentum,
            self.cfg.zones,
            self.cfg.alpha,
            self.generator,
        )

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def class_ratio_from_masks(masks: list[Any], num_classes: int) -> torch.Tensor:
    """``r_c = N_c / N_min`` over the labeled set (classes never seen get the largest ratio)."""
    counts = labeled_histogram(masks, num_classes)
    present = counts[counts > 0]
    n_min = present.min() if present.size else 1
    ratio = np.where(counts > 0, counts / n_min, counts.max() / n_min if present.size else 1.0)
    return torch.tensor(ratio, dtype=torch.float32)
