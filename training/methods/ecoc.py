"""ECOCSeg (Li et al., NeurIPS): error-correcting output codes for dense classification.

Each class n has a K-bit codeword ``c_n``; a K-channel sigmoid head predicts bits ``p_k``; a
pixel is decoded by soft Hamming distance ``d_SH(c_n, p) = (1/K) sum_k |p_k - c_nk|``. Since
``c_nk`` is binary, ``K (1 - d_SH) = sum_k (1 - c_nk) + sum_k (2 c_nk - 1) p_k``: decoding is a
fixed linear map of the sigmoid outputs (a 1x1 convolution; exported to ONNX as such).

Choices (shared/methods/ecocseg.md): codebook by random search + bit-flip hill climbing on the
minimum row Hamming distance (the authors' code uses random search only), rejecting constant
columns; reliable bits from the top-``T`` candidates whose codewords agree, with mean bit
confidence above ``theta`` (the code's rule, first crossing only); the pixel-code contrast uses
the poster's form ``log(1 + sum_neg exp(cos/tau))`` over the other classes' codewords.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from segloop.errors import SegloopError


def hamming_distances(codebook: np.ndarray) -> np.ndarray:
    """N x N pairwise row Hamming distances of a binary codebook."""
    signed = 2 * codebook.astype(np.int64) - 1
    return (codebook.shape[1] - signed @ signed.T) // 2


def min_row_distance(codebook: np.ndarray) -> int:
    d = hamming_distances(codebook)
    return int(d[~np.eye(len(d), dtype=bool)].min())


def _score(codebook: np.ndarray) -> tuple[int, int]:
    d = hamming_distances(codebook)[np.triu_indices(len(codebook), 1)]
    low = int(d.min())
    return low, -int((d == low).sum())


def build_codebook(
    num_classes: int,
    bits: int,
    min_distance: int,
    seed: int = 0,
    trials: int = 2000,
    climb_steps: int = 2000,
) -> np.ndarray:
    """A ``num_classes x bits`` {0,1} codebook with row distance >= ``min_distance``.

    Raises :class:`SegloopError` when the search cannot reach ``min_distance``.
    """
    rng = np.random.default_rng(seed)
    best, best_score = None, (-1, 0)
    for _ in range(trials):
        candidate = rng.integers(0, 2, size=(num_classes, bits), dtype=np.uint8)
        score = _score(candidate)
        if score > best_score:
            best, best_score = candidate, score
    assert best is not None
    for _ in range(climb_steps):
        i, k = int(rng.integers(num_classes)), int(rng.integers(bits))
        best[i, k] ^= 1
        score = _score(best)
        if score >= best_score:
            best_score = score
        else:
            best[i, k] ^= 1
    constant = (best.min(axis=0) == best.max(axis=0)).sum()
    achieved = min_row_distance(best)
    if achieved < min_distance or constant:
        raise SegloopError(
            f"could not build a {num_classes}x{bits} codebook with minimum row Hamming distance "
            f"{min_distance} (best {achieved}, {constant} constant columns); lower "
            "model.ecoc.min_distance or raise model.ecoc.bits"
        )
    return best


def decode_scores(bit_probs: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``K (1 - d_SH)`` for every class: B x K x H x W bit probabilities -> B x N x H x W."""
    weight = (2.0 * codebook - 1.0)[:, :, None, None]
    bias = (1.0 - codebook).sum(dim=1)
    return F.conv2d(bit_probs, weight, bias)


@torch.no_grad()
def reliable_bit_mask(
    bit_probs: torch.Tensor, codebook: torch.Tensor, top: int = 8, theta: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reliable bit mining. Returns (M, top-1 class): M (B x K x H x W) is 1 on the bits shared
    by the top-j candidate codewords for the smallest j whose mean bit confidence
    ``max(p, 1 - p)`` over those bits exceeds ``theta``; 0 everywhere if none does."""
    scores = decode_scores(bit_probs, codebook)
    top = min(top, codebook.shape[0])
    candidates = scores.topk(top, dim=1).indices  # B x T x H x W
    codes = codebook[candidates].permute(0, 1, 4, 2, 3)  # B x T x K x H x W
    confidence = 0.5 + (bit_probs - 0.5).abs()
    mask = torch.zeros_like(bit_probs)
    done = torch.zeros_like(bit_probs[:, 0], dtype=torch.bool)
    for j in range(top):
        agree = (codes[:, : j + 1] == codes[:, :1]).all(dim=1).float()
        count = agree.sum(dim=1)
        conf = torch.where(
            count > 0, (confidence * agree).sum(dim=1) / count.clamp_min(1), torch.ones_like(count)
        )
        pick = (conf > theta) & ~done
        mask = torch.where(pick.unsqueeze(1), agree, mask)
        done |= pick
    return mask, candidates[:, 0]


def hybrid_bits(
    bit_probs: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor, top_class: torch.Tensor
) -> torch.Tensor:
    """``c_hyb = M * c_code + (1 - M) * c_bit`` with ``c_bit = 1[p > 0.5]``."""
    code = codebook[top_class].permute(0, 3, 1, 2)
    return mask * code + (1.0 - mask) * (bit_probs > 0.5).float()


def ecoc_loss(
    bit_logits: torch.Tensor,
    target_bits: torch.Tensor,
    target_class: torch.Tensor,
    weight: torch.Tensor,
    codebook: torch.Tensor,
    w_pcd: float = 5.0,
    w_pcc: float = 2.0,
    tau: float = 0.5,
) -> torch.Tensor:
    """``L_bce + w_pcd L_pcd + w_pcc L_pcc`` averaged over pixels with ``weight`` (B x H x W;
    0 for ignored pixels). ``target_class`` (B x H x W) names the class whose codeword is the
    positive; the other codewords are the contrast's negatives."""
    denom = weight.sum().clamp_min(1.0)
    bce = F.binary_cross_entropy_with_logits(bit_logits, target_bits, reduction="none").mean(1)
    signed_target = 2.0 * target_bits - 1.0
    cos_pos = F.cosine_similarity(bit_logits, signed_target, dim=1)
    signed_codes = 2.0 * codebook - 1.0  # N x K
    logits_unit = F.normalize(bit_logits, dim=1)
    cos_all = torch.einsum("bkhw,nk->bnhw", logits_unit, F.normalize(signed_codes, dim=1))
    negatives = torch.ones_like(cos_all, dtype=torch.bool)
    safe_class = torch.where(target_class < codebook.shape[0], target_class, 0)
    negatives.scatter_(1, safe_class.unsqueeze(1), False)
    neg_sum = (torch.exp(cos_all / tau) * negatives).sum(dim=1)
    pcc = torch.log1p(neg_sum)
    per_pixel = bce + w_pcd * (1.0 - cos_pos) + w_pcc * pcc
    return (per_pixel * weight).sum() / denom
