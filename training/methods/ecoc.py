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
    ``max(p, 1 - p)`` over those bits exceeds ``theta``; 0 everywhere if none does.

    The bits the top-j codewords share are those the top-(j-1) share on which codeword j
    agrees with the first, so one pass over the candidates builds every set (a product with a
    precomputed N x N x K table of agreeing bits). Pixels are handled pixel-major, and a pixel
    leaves the pass once its j is found, so only the undecided ones pay for larger j.
    """
    batch, bits, height, width = bit_probs.shape
    top = min(top, codebook.shape[0])
    candidates = decode_scores(bit_probs, codebook).topk(top, dim=1).indices  # B x T x H x W
    candidates = candidates.permute(0, 2, 3, 1).reshape(-1, top)  # P x T
    confidence = (0.5 + (bit_probs - 0.5).abs()).permute(0, 2, 3, 1).reshape(-1, bits)  # P x K
    classes = codebook.shape[0]
    agrees_with = (codebook[:, None, :] == codebook[None, :, :]).to(bit_probs.dtype)
    agrees_with = agrees_with.view(classes * classes, bits)  # row a * N + b: a, b agree on k
    first = candidates[:, 0]
    mask = torch.zeros_like(confidence)
    rows = torch.arange(len(confidence), device=bit_probs.device)  # the undecided pixels
    shared = torch.ones_like(confidence)
    for j in range(top):
        if j:
            pair = first.index_select(0, rows) * classes + candidates[:, j].index_select(0, rows)
            shared.mul_(agrees_with.index_select(0, pair))
        count = shared.sum(dim=1)
        conf = (confidence.index_select(0, rows) * shared).sum(dim=1) / count.clamp_min(1)
        pick = torch.where(count > 0, conf, torch.ones_like(conf)) > theta
        picked = pick.nonzero().squeeze(1)
        mask.index_copy_(0, rows.index_select(0, picked), shared.index_select(0, picked))
        left = (~pick).nonzero().squeeze(1)
        rows, shared = rows.index_select(0, left), shared.index_select(0, left)
        if not len(rows):
            break
    mask = mask.view(batch, height, width, bits).permute(0, 3, 1, 2).contiguous()
    return mask, first.view(batch, height, width)


def hybrid_bits(
    bit_probs: torch.Tensor, codebook: torch.Tensor, mask: torch.Tensor, top_class: torch.Tensor
) -> torch.Tensor:
    """``c_hyb = M * c_code + (1 - M) * c_bit`` with ``c_bit = 1[p > 0.5]``."""
    code = codebook[top_class].permute(0, 3, 1, 2)
    return torch.where(mask.bool(), code, (bit_probs > 0.5).to(code.dtype))


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
    positive; the other codewords are the contrast's negatives.

    Per pixel with bit logits ``z``, target bits ``t`` and signed codewords ``s_n = 2 c_n - 1``:
    ``L_bce = mean_k BCE(z_k, t_k)``, ``L_pcd = 1 - cos(z, 2t - 1)``,
    ``L_pcc = log(1 + sum_{n != y} exp(cos(z, s_n) / tau))``. Computed pixel-major (P x K) on
    the pixels with weight > 0 only: the same sum, since a zero weight contributes nothing.
    """
    denom = weight.sum().clamp_min(1.0)
    bits = bit_logits.shape[1]
    kept = (weight.reshape(-1) > 0).nonzero().squeeze(1)
    logits = bit_logits.permute(0, 2, 3, 1).reshape(-1, bits)[kept]  # P x K
    target = target_bits.permute(0, 2, 3, 1).reshape(-1, bits)[kept]
    classes = target_class.reshape(-1)[kept]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
    logits_unit = F.normalize(logits, dim=1)
    cos_pos = (logits_unit * F.normalize(2.0 * target - 1.0, dim=1)).sum(1)
    cos_all = logits_unit @ F.normalize(2.0 * codebook - 1.0, dim=1).T  # P x N
    positive = torch.where(classes < codebook.shape[0], classes, 0).unsqueeze(1)
    neg_sum = torch.exp(cos_all / tau).scatter(1, positive, 0.0).sum(dim=1)
    per_pixel = bce + w_pcd * (1.0 - cos_pos) + w_pcc * torch.log1p(neg_sum)
    return (per_pixel * weight.reshape(-1)[kept]).sum() / denom
