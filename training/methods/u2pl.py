"""U2PL / U2PL+ (Wang et al., "Using Unreliable Pseudo-Labels for Label-Efficient Semantic
Segmentation"): entropy partition, adaptive weight, rank-window negatives in per-class FIFO
queues, momentum prototypes as positives, InfoNCE; optional prototypical denoising and
symmetric cross-entropy.

Choices where the paper and the authors' code differ (see shared/methods/u2pl.md §7):
- the unsupervised loss is Eq. 14 as written: ``lambda_u`` times the per-pixel loss averaged
  over all B*H*W pixels, i.e. a mean over reliable pixels (the code adds an extra
  ``1 / (1 - alpha_t)`` factor);
- labeled negatives follow Eq. 26 directly (the public code's mask is always empty, #171);
- the contrastive loss averages InfoNCE over anchors, then over classes present (code's form);
- the percentile is taken over all valid pixels of the unlabeled batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segloop.taxonomy import IGNORE_INDEX


def entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Eq. 11: ``H(p) = -sum_c p_c log p_c`` (natural log)."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=dim)


def unreliable_fraction(alpha0: float, progress: float) -> float:
    """Dynamic partition adjustment: ``alpha_t = alpha_0 (1 - t / T)``, ``progress = t / T``."""
    return alpha0 * (1.0 - min(max(progress, 0.0), 1.0))


def entropy_threshold(
    ent: torch.Tensor, valid: torch.Tensor, alpha_t: float, max_samples: int = 1 << 22
) -> torch.Tensor:
    """``gamma_t``: the ``1 - alpha_t`` quantile of entropy over valid pixels (subsampled by
    a fixed stride beyond ``max_samples``, below torch.quantile's size limit)."""
    values = ent[valid].float()
    if values.numel() == 0:
        return torch.tensor(float("inf"), device=ent.device)
    if values.numel() > max_samples:
        values = values[:: values.numel() // max_samples + 1]
    return torch.quantile(values, 1.0 - alpha_t)


def entropy_partition(
    ent: torch.Tensor, valid: torch.Tensor, alpha_t: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 12: (reliable, unreliable) masks; reliable = valid & H < gamma_t."""
    if alpha_t <= 0:
        return valid.clone(), torch.zeros_like(valid)
    gamma = entropy_threshold(ent, valid, alpha_t)
    reliable = valid & (ent < gamma)
    return reliable, valid & ~reliable


def adaptive_lambda_u(reliable: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """Eq. 14: ``lambda_u = eta * |B_u| H W / #reliable`` (the inverse reliable fraction)."""
    return eta * reliable.numel() / reliable.sum().clamp_min(1)


def symmetric_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    xi1: float = 1.0,
    xi2: float = 0.1,
    log_zero: float = 1e-4,
) -> torch.Tensor:
    """Eq. 4, per pixel: ``xi1 CE(p, y) + xi2 CE(y, p)``; the reverse term with the one-hot
    clamped to ``[log_zero, 1]`` is ``-log(log_zero) (1 - p_y)``. Ignored pixels give 0."""
    valid = target != IGNORE_INDEX
    safe = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, safe, reduction="none")
    p_y = F.softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    rce = -torch.log(torch.tensor(log_zero, device=logits.device)) * (1.0 - p_y)
    return torch.where(valid, xi1 * ce + xi2 * rce, torch.zeros_like(ce))


def unsupervised_loss(
    logits: torch.Tensor,
    pseudo: torch.Tensor,
    reliable: torch.Tensor,
    eta: float = 1.0,
    xi2: float = 0.0,
) -> torch.Tensor:
    """``lambda_u * L_u`` with the per-pixel loss averaged over all B*H*W pixels (Eq. 14);
    ``xi2 > 0`` turns on the symmetric CE of U2PL+ (Eq. 4)."""
    target = torch.where(reliable, pseudo, torch.full_like(pseudo, IGNORE_INDEX))
    per_pixel = symmetric_ce(logits, target, 1.0, xi2)
    return adaptive_lambda_u(reliable, eta) * per_pixel.mean()


def class_ranks(probs: torch.Tensor) -> torch.Tensor:
    """Rank of every class per pixel, 0 = most probable (``O_ij`` of Eqs. 26-27)."""
    return probs.argsort(dim=1, descending=True).argsort(dim=1)


def labeled_negatives(ranks: torch.Tensor, labels: torch.Tensor, c: int, r_l: int) -> torch.Tensor:
    """Eq. 26: labeled pixels that are not class ``c`` but rank ``c`` in their top ``r_l``."""
    return (labels != c) & (labels != IGNORE_INDEX) & (ranks[:, c] < r_l)


def unlabeled_negatives(
    ranks: torch.Tensor, unreliable: torch.Tensor, c: int, r_l: int, r_h: int
) -> torch.Tensor:
    """Eq. 27: unreliable pixels that rank ``c`` within ``[r_l, r_h)``."""
    return unreliable & (ranks[:, c] >= r_l) & (ranks[:, c] < r_h)


class NegativeQueue:
    """Per-class FIFO memory of negative keys: a fixed ``C x capacity x D`` tensor."""

    def __init__(self, num_classes: int, capacity: int, dim: int, device: torch.device) -> None:
        self.memory = torch.zeros(num_classes, capacity, dim, device=device)
        self.head = torch.zeros(num_classes, dtype=torch.long)
        self.size = torch.zeros(num_classes, dtype=torch.long)
        self.capacity = capacity

    def push(self, c: int, keys: torch.Tensor) -> None:
        """Enqueue keys (n x D) for class ``c``; the oldest entries are overwritten."""
        keys = keys.detach()[-self.capacity :]
        n = keys.shape[0]
        if n == 0:
            return
        slots = (int(self.head[c]) + torch.arange(n)) % self.capacity
        self.memory[c, slots.to(self.memory.device)] = keys.to(self.memory.dtype)
        self.head[c] = (int(self.head[c]) + n) % self.capacity
        self.size[c] = min(int(self.size[c]) + n, self.capacity)

    def contents(self, c: int) -> torch.Tensor:
        """Class ``c``'s keys from oldest to newest."""
        size, head = int(self.size[c]), int(self.head[c])
        start = (head - size) % self.capacity
        order = (start + torch.arange(size)) % self.capacity
        return self.memory[c, order.to(self.memory.device)]

    def sample(self, c: int, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` keys drawn uniformly with replacement."""
        idx = torch.randint(0, int(self.size[c]), (count,), generator=generator)
        return self.contents(c)[idx.to(self.memory.device)]


class PrototypeMemory:
    """Eq. 18: ``z_c <- m z_c + (1 - m) mean(P_c)``, initialised with the first centroid."""

    def __init__(self, num_classes: int, dim: int, momentum: float, device: torch.device) -> None:
        self.vectors = torch.zeros(num_classes, dim, device=device)
        self.ready = torch.zeros(num_classes, dtype=torch.bool, device=device)
        self.momentum = momentum

    @torch.no_grad()
    def update(self, c: int, features: torch.Tensor) -> None:
        if features.shape[0] == 0:
            return
        centroid = features.mean(dim=0)
        if bool(self.ready[c]):
            self.vectors[c] = self.momentum * self.vectors[c] + (1 - self.momentum) * centroid
        else:
            self.vectors[c] = centroid
            self.ready[c] = True


def info_nce(
    anchors: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, tau: float
) -> torch.Tensor:
    """Eq. 10 for one class: anchors M x D, positive D, negatives M x N x D; cosine
    similarity over temperature, cross-entropy with the positive at index 0, mean over M."""
    keys = torch.cat([positive.expand(anchors.shape[0], 1, -1), negatives], dim=1)
    logits = F.cosine_similarity(anchors.unsqueeze(1), keys, dim=2) / tau
    target = torch.zeros(anchors.shape[0], dtype=torch.long, device=anchors.device)
    return F.cross_entropy(logits, target)


def prototypical_denoising(
    probs: torch.Tensor, features: torch.Tensor, prototypes: torch.Tensor
) -> torch.Tensor:
    """Eqs. 19-20: ``p* = normalise(softmax_c(-||z - z_c||) * p)`` per pixel (B x C x h x w
    probabilities, B x D x h x w teacher features, C x D prototypes)."""
    b, d, h, w = features.shape
    flat = features.permute(0, 2, 3, 1).reshape(-1, d)
    dist = torch.cdist(flat, prototypes)  # (B h w) x C
    weights = F.softmax(-dist, dim=1).reshape(b, h, w, -1).permute(0, 3, 1, 2)
    weighted = weights * probs
    return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(1e-12)


class U2PLContrast:
    """L_c (Eq. 10) over one batch at representation resolution.

    ``labels`` holds ground truth on labeled images and pseudo-labels on unlabeled ones (255
    elsewhere); ``reliable``/``unreliable`` are the entropy partition (labeled valid pixels
    count as reliable). Per class present: teacher features of labeled and reliable pixels
    update the prototype (Eqs. 15-18); Eq. 26/27 negatives are enqueued; ``anchors`` student
    features with teacher probability above ``delta_p`` (Eqs. 21-22) are contrasted with the
    prototype against ``negatives`` keys sampled from the queue.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        device: torch.device,
        *,
        anchors: int,
        negatives: int,
        tau: float,
        r_l: int,
        r_h: int,
        delta_p: float,
        queue_size: int,
        prototype_momentum: float,
        seed: int,
    ) -> None:
        self.queue = NegativeQueue(num_classes, queue_size, dim, device)
        self.prototypes = PrototypeMemory(num_classes, dim, prototype_momentum, device)
        self.anchors, self.negatives, self.tau = anchors, negatives, tau
        self.r_l, self.r_h, self.delta_p = r_l, r_h, delta_p
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self,
        student_emb: torch.Tensor,
        teacher_emb: torch.Tensor,
        teacher_probs: torch.Tensor,
        labels: torch.Tensor,
        is_labeled: torch.Tensor,
        reliable: torch.Tensor,
        unreliable: torch.Tensor,
    ) -> torch.Tensor:
        ranks = class_ranks(teacher_probs)
        student = student_emb.permute(0, 2, 3, 1)
        teacher = teacher_emb.detach().permute(0, 2, 3, 1)
        on_labeled = is_labeled.view(-1, 1, 1).expand_as(labels)
        losses = []
        for c in labels[labels != IGNORE_INDEX].unique().tolist():
            members = (labels == c) & (on_labeled | reliable)
            self.prototypes.update(c, teacher[members])
            negatives = (on_labeled & labeled_negatives(ranks, labels, c, self.r_l)) | (
                ~on_labeled & unlabeled_negatives(ranks, unreliable, c, self.r_l, self.r_h)
            )
            self.queue.push(c, teacher[negatives])
            candidates = student[members & (teacher_probs[:, c] > self.delta_p)]
            if candidates.shape[0] == 0 or int(self.queue.size[c]) == 0:
                continue
            pick = torch.randint(0, candidates.shape[0], (self.anchors,), generator=self.generator)
            keys = self.queue.sample(c, self.anchors * self.negatives, self.generator)
            losses.append(
                info_nce(
                    candidates[pick.to(candidates.device)],
                    self.prototypes.vectors[c],
                    keys.view(self.anchors, self.negatives, -1),
                    self.tau,
                )
            )
        if not losses:
            return student_emb.sum() * 0.0
        return torch.stack(losses).mean()
