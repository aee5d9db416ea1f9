"""The loss terms of one training step: supervised loss plus every enabled component.

Order of one step (mean teacher; shared/ARCHITECTURE.md "Methods"):

1. the student on the labeled batch: the head's supervised loss; ELN (auxiliary decoders and
   the error localizer) and DeS4 (the teacher's decoupled decoder) add labeled terms;
2. with ``methods.unlabeled``, the teacher (eval mode) labels the weak view, its
   probabilities first aligned to the labeled class distribution per group of frames under
   ``methods.alignment`` (training/methods/alignment.py); the enabled filters (confidence
   threshold, U2PL entropy partition, ELN mask) are combined by :func:`combine_filters`; the
   strong view (CutMix + photometric) mixes images, pseudo-labels and masks with the same
   boxes; the student's strong-view prediction gets the head's unsupervised loss on reliable
   pixels, U2PL's contrast (negatives from unreliable pixels) and ELN's pixel contrast;
   unlabeled terms are ramped in linearly over ``rampup_steps``;
3. after the optimiser step the teacher follows the student by EMA (the encoder only under
   DeS4, whose prototypes then move by multi-entropy sampling).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segloop.params import Params
from segloop.pool_selection import labeled_histogram
from segloop.selection import class_prior
from segloop.taxonomy import IGNORE_INDEX
from training.components import (
    DeS4Component,
    ELNComponent,
    U2PLComponent,
    class_ratio_from_masks,
    downsample_labels,
)
from training.methods.alignment import POOL_GROUP, DistributionAlignment
from training.methods.augment import apply_cutmix, cutmix_masks, photometric
from training.methods.ema import ema_decay, ema_update, make_teacher
from training.methods.filters import combine_filters
from training.methods.u2pl import prototypical_denoising
from training.models import SegmentationModel
from training.models.heads import PrototypeHead
from training.objectives import HeadObjective


def upsample(raw: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(raw, size=size, mode="bilinear", align_corners=False)


def rampup(step: int, length: int) -> float:
    """Linear ramp of the unlabeled weight from 0 at the first step to 1 after ``length``."""
    if length <= 0:
        return 1.0
    return min(step / length, 1.0)


class StepObjective:
    def __init__(
        self,
        model: SegmentationModel,
        params: Params,
        num_classes: int,
        device: torch.device,
        labeled_masks: list[np.ndarray],
        unlabeled_groups: list[str] | None = None,
    ) -> None:
        self.model, self.params = model, params
        m = params.methods
        self.head = HeadObjective(model, params)
        self.teacher = make_teacher(model) if m.unlabeled else None
        self.eln = ELNComponent(model, params, num_classes, device) if m.eln.enabled else None
        self.u2pl = U2PLComponent(params, num_classes, device) if m.u2pl.enabled else None
        self.des4 = None
        if m.des4.enabled:
            self.des4 = DeS4Component(params, class_ratio_from_masks(labeled_masks, num_classes))
            if self.teacher is not None:
                self.des4.share_prototypes(model, self.teacher)
        self.alignment = None
        if m.alignment.enabled:
            prior = class_prior(labeled_histogram(labeled_masks, num_classes))
            self.alignment = DistributionAlignment(
                torch.from_numpy(prior),
                unlabeled_groups or [POOL_GROUP],
                m.alignment.momentum,
                device,
            )
        self.generator = torch.Generator().manual_seed(params.train.seed + 5)
        # The last step's weak-view pseudo-labels and the pixels the filters kept.
        self.last_pseudo_labels: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset_teacher(self) -> None:
        """Re-copy the teacher from the student (after a warm start)."""
        if self.teacher is not None:
            self.teacher.load_state_dict(self.model.state_dict())

    # -- bookkeeping -------------------------------------------------------------------
    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules besides the student that the optimiser trains."""
        modules: dict[str, nn.Module] = {}
        if self.eln is not None:
            modules.update(self.eln.modules())
        if self.des4 is not None and self.teacher is not None:
            modules["des4_teacher_decoder"] = self.teacher.decoder
        return modules

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        for name, module in self.trainable_modules().items():
            state[f"module:{name}"] = module.state_dict()
        for name, comp in self._components():
            if comp is not None:
                state[f"component:{name}"] = comp.state()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        for name, module in self.trainable_modules().items():
            module.load_state_dict(state[f"module:{name}"])
        for name, comp in self._components():
            if comp is not None:
                comp.load_state(state[f"component:{name}"])

    def _components(self) -> list[tuple[str, Any]]:
        return [
            ("eln", self.eln),
            ("u2pl", self.u2pl),
            ("des4", self.des4),
            ("alignment", self.alignment),
        ]

    def eval_model(self) -> SegmentationModel:
        """The model that is validated and exported: the teacher under mean teacher."""
        if self.teacher is not None and self.params.methods.evaluate == "teacher":
            return self.teacher
        return self.model

    # -- the step ----------------------------------------------------------------------
    def terms(
        self,
        step: int,
        images: torch.Tensor,
        labels: torch.Tensor,
        unlabeled: torch.Tensor | None,
        unlabeled_groups: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        m = self.params.methods
        if m.eln.fit_only:
            return self._eln_fit_terms(images, labels)
        out = self.model.forward_parts(images)
        raw_up = upsample(out.raw, images.shape[2:])
        supervised = self.head.supervised(raw_up, labels)
        terms = {"sup": supervised * (m.des4.lambda_b if self.des4 is not None else 1.0)}
        if self.eln is not None:
            self.eln.training_enabled = m.eln.train_during_ssl or unlabeled is None
            terms.update(
                self.eln.labeled_losses(images, labels, out, self.model.head.class_scores(raw_up))
            )
        if self.des4 is not None:
            terms.update(self.des4.labeled_losses(self.teacher, images, labels))
            if self.teacher is None:
                self.des4.last_teacher_output = (out.feature.detach(), out.raw.detach())
        if unlabeled is not None:
            assert out.embedding is not None
            terms.update(
                self._unlabeled_terms(
                    step, images, labels, out.embedding, unlabeled, unlabeled_groups
                )
            )
        return terms

    def _eln_fit_terms(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``methods.eln.fit_only``: the ELN's labeled terms (Eqs. 3-6) on the frozen model's
        eval-mode predictions, the ones the ELN will judge when it labels; no model loss."""
        assert self.eln is not None
        with torch.no_grad():
            out = self.model.forward_parts(images)
            scores = self.model.head.class_scores(upsample(out.raw, images.shape[2:]))
        self.eln.training_enabled = True
        return self.eln.labeled_losses(images, labels, out, scores)

    def _unlabeled_terms(
        self,
        step: int,
        images: torch.Tensor,
        labels: torch.Tensor,
        labeled_embedding: torch.Tensor,
        weak: torch.Tensor,
        groups: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        m = self.params.methods
        assert self.teacher is not None
        self.teacher.eval()
        size = weak.shape[2:]
        weight = m.unsup_weight * rampup(step, m.rampup_steps)
        with torch.no_grad():
            t_out = self.teacher.forward_parts(weak)
            assert t_out.embedding is not None
            t_raw_up = upsample(t_out.raw, size)
            probs = self.head.probabilities(t_raw_up)
            if (
                self.u2pl is not None
                and self.u2pl.cfg.denoise
                and bool(self.u2pl.contrast.prototypes.ready.all())
            ):
                small = prototypical_denoising(
                    self.head.probabilities(t_out.raw),
                    t_out.embedding,
                    self.u2pl.contrast.prototypes.vectors,
                )
                probs = upsample(small, size)
            if self.alignment is not None:
                if groups is None:
                    groups = torch.zeros(weak.shape[0], dtype=torch.long, device=weak.device)
                probs = self.alignment(probs, groups)
            pseudo = probs.argmax(dim=1)
            valid = torch.ones_like(pseudo, dtype=torch.bool)
            trusted = []
            if m.confidence_threshold > 0 and self.des4 is None:
                trusted.append(self.head.confidence(t_raw_up, probs) >= m.confidence_threshold)
            if self.u2pl is not None:
                trusted.append(self.u2pl.trusted(probs, valid, step / self.params.train.steps))
            if self.eln is not None:
                mask = self.eln.trusted(weak, probs)
                if mask is not None:
                    trusted.append(mask)
            reliable, unreliable = combine_filters(valid, trusted)
            self.last_pseudo_labels = (pseudo, reliable)

            s = m.strong
            boxes = cutmix_masks(
                weak.shape[0], size[0], size[1], self.generator, s.cutmix_area, s.cutmix_p
            )
            strong = photometric(
                apply_cutmix(weak, boxes), self.generator, s.jitter, s.grayscale_p, s.blur_p
            )
            pseudo_s = apply_cutmix(pseudo, boxes)
            reliable_s = apply_cutmix(reliable, boxes)
            unreliable_s = apply_cutmix(unreliable, boxes)
            targets = self.head.teacher_targets(t_out.raw, size)
            targets_s = apply_cutmix(targets, boxes) if targets is not None else None

        s_out = self.model.forward_parts(strong)
        s_raw_up = upsample(s_out.raw, size)
        terms: dict[str, torch.Tensor] = {}
        if self.des4 is not None:
            scores = self.model.head.class_scores(s_raw_up).float()
            terms["des4_unsup"] = weight * m.des4.lambda_u * F.cross_entropy(scores, pseudo_s)
        else:
            terms["unsup"] = weight * self.head.unsupervised(
                s_raw_up, pseudo_s, reliable_s, targets_s
            )

        grid = s_out.raw.shape[2:]
        boxes_small = downsample_labels(boxes, grid)
        t_emb_s = apply_cutmix(t_out.embedding, boxes_small)
        pseudo_small = downsample_labels(pseudo_s, grid)
        reliable_small = downsample_labels(reliable_s, grid)
        assert s_out.embedding is not None
        if self.u2pl is not None:
            with torch.no_grad():
                t_lab = self.teacher.forward_parts(images)
                assert t_lab.embedding is not None
                probs_small = torch.cat(
                    [
                        self.head.probabilities(t_lab.raw),
                        self.head.probabilities(apply_cutmix(t_out.raw, boxes_small)),
                    ]
                )
            labels_small = downsample_labels(labels, grid)
            n_l, n_u = images.shape[0], weak.shape[0]
            is_labeled = torch.tensor([True] * n_l + [False] * n_u, device=weak.device)
            rel = torch.cat([labels_small != IGNORE_INDEX, reliable_small])
            unrel = torch.cat(
                [
                    torch.zeros_like(labels_small, dtype=torch.bool),
                    downsample_labels(unreliable_s, grid),
                ]
            )
            contrast = self.u2pl.contrast_loss(
                torch.cat([labeled_embedding, s_out.embedding]),
                torch.cat([t_lab.embedding, t_emb_s]),
                probs_small,
                torch.cat([labels_small, pseudo_small]),
                is_labeled,
                rel,
                unrel,
            )
            terms.update({k: weight * v for k, v in contrast.items()})
        if self.eln is not None:
            contrast = self.eln.unlabeled_losses(
                s_out.embedding, t_emb_s, pseudo_small, reliable_small
            )
            terms.update({k: weight * v for k, v in contrast.items()})
        return terms

    @torch.no_grad()
    def after_step(self, step: int, labels: torch.Tensor) -> None:
        m = self.params.methods
        if self.teacher is not None:
            if self.des4 is not None:
                decay = ema_decay(step, m.des4.encoder_ema)
                ema_update(self.teacher, self.model, decay, prefix="backbone.")
            else:
                ema_update(self.teacher, self.model, ema_decay(step, m.teacher_decay))
        if self.des4 is not None and self.des4.last_teacher_output is not None:
            feature, raw = self.des4.last_teacher_output
            assert isinstance(self.model.head, PrototypeHead)
            self.des4.after_step(self.model.head, feature, raw, labels)
