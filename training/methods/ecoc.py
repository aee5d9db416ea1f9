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

import math
from typing import Any

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
    target_bits: torch.Tensor | None,
    target_class: torch.Tensor,
    weight: torch.Tensor,
    codebook: torch.Tensor,
    w_pcd: float = 5.0,
    w_pcc: float = 2.0,
    tau: float = 0.5,
) -> torch.Tensor:
    """``L_bce + w_pcd L_pcd + w_pcc L_pcc`` averaged over pixels with ``weight`` (B x H x W;
    0 for ignored pixels). ``target_bits`` (B x K x H x W, values in {0, 1}) are the pixel's
    target codeword, or None for the codeword of ``target_class`` (the supervised case);
    ``target_class`` (B x H x W) names the class whose codeword is the contrast's positive; the
    other codewords are its negatives.

    Per pixel with bit logits ``z``, target bits ``t`` and signed codewords ``s_n = 2 c_n - 1``:
    ``L_bce = mean_k BCE(z_k, t_k)``, ``L_pcd = 1 - cos(z, 2t - 1)``,
    ``L_pcc = log(1 + sum_{n != y} exp(cos(z, s_n) / tau))``.

    Computed in float32 by :class:`_EcocLoss`, from per-pixel sums over the bits and with a
    closed-form gradient, so that the K x H x W logits are read a few times instead of once per
    term (``benchmarks/ecoc_cost.py``).
    """
    loss = _EcocLoss.apply(
        bit_logits, target_bits, target_class, weight, codebook, w_pcd, w_pcc, tau
    )
    assert isinstance(loss, torch.Tensor)
    return loss


class _EcocLoss(torch.autograd.Function):
    """The ECOC loss of :func:`ecoc_loss` and its gradient with respect to the logits.

    With ``s = 2t - 1`` binary: ``|s| = sqrt(K)``, ``z.t = (z.s + sum_k z_k) / 2`` and
    ``sum_k BCE(z_k, t_k) = sum_k softplus(z_k) - z.t``; the products ``z.s_n`` with every
    signed codeword are one N x K matrix product, and for a codeword target ``z.s`` is its
    entry there. With ``r = |z| sqrt(K)``, ``cos_n = z.s_n / r`` and
    ``d cos_n / dz = s_n / r - cos_n z / |z|^2``, the per-pixel gradient is

        sigmoid(z) / K - t / K + sum_n c_n s_n - c_s s + delta z,
        c_n = w_pcc a_n / (tau r),  a_n = e_n / (1 + sum_m e_m),  e_n = exp(cos_n / tau)
              (e_y = 0 at the positive class y),
        c_s = w_pcd / r,
        delta = (w_pcd z.s - (w_pcc / tau) sum_n a_n z.s_n) / (|z|^2 r),

    times the pixel's weight over the weight sum. The ``s_n`` terms and the per-pixel constant
    (``-t / K - c_s s`` is ``-(1/(2K) + c_s) s_y - 1/(2K)`` for a codeword target and
    ``-(1/K + 2 c_s) t + c_s`` otherwise) are one batched matrix product with the codewords
    and a row of ones, accumulated in place. ``tests/test_methods_ecoc_eln_des4.py`` checks the
    value and the gradient against the per-pixel definition under autograd.
    """

    @staticmethod
    def forward(
        ctx: Any,
        bit_logits: torch.Tensor,
        target_bits: torch.Tensor | None,
        target_class: torch.Tensor,
        weight: torch.Tensor,
        codebook: torch.Tensor,
        w_pcd: float,
        w_pcc: float,
        tau: float,
    ) -> torch.Tensor:
        with torch.autocast(bit_logits.device.type, enabled=False):
            batch, bits, height, width = bit_logits.shape
            z = bit_logits.float().reshape(batch, bits, height * width)
            signed = 2.0 * codebook.float() - 1.0  # N x K
            z_sum = z.sum(1)
            norm = (z * z).sum(1).sqrt().clamp_min(1e-12)  # F.normalize's epsilon
            scale = norm * math.sqrt(bits)
            z_dot_codes = torch.matmul(signed, z)  # B x N x P
            classes = codebook.shape[0]
            positive = torch.where(target_class < classes, target_class, 0).reshape(batch, 1, -1)
            target = None if target_bits is None else target_bits.float().reshape(z.shape)
            if target is None:
                z_dot_s = z_dot_codes.gather(1, positive).squeeze(1)
            else:
                z_dot_s = 2.0 * (z * target).sum(1) - z_sum
            bce = (F.softplus(z).sum(1) - (z_dot_s + z_sum) / 2.0) / bits
            exps = torch.exp(z_dot_codes / (scale.unsqueeze(1) * tau)).scatter_(1, positive, 0.0)
            exp_sum = exps.sum(1)
            per_pixel = bce + w_pcd * (1.0 - z_dot_s / scale) + w_pcc * torch.log1p(exp_sum)
            w = weight.float().reshape(batch, -1)
            w = w / w.sum().clamp_min(1.0)
            ctx.save_for_backward(z, target, positive, w, scale, norm, z_dot_s, z_dot_codes)
            ctx.softmax = exps / (1.0 + exp_sum).unsqueeze(1)  # a_n
            ctx.signed = signed
            ctx.weights = (w_pcd, w_pcc, tau)
            ctx.shape, ctx.dtype = bit_logits.shape, bit_logits.dtype
            return (per_pixel * w).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, target, positive, w, scale, norm, z_dot_s, z_dot_codes = ctx.saved_tensors
        w_pcd, w_pcc, tau = ctx.weights
        batch, bits = z.shape[:2]
        w = w * grad_out
        coef = ctx.softmax * (w_pcc / tau) / scale.unsqueeze(1)  # c_n
        c_s = w_pcd / scale
        delta = w_pcd * z_dot_s - (w_pcc / tau) * (ctx.softmax * z_dot_codes).sum(1)
        delta = delta / (norm * norm * scale)
        if target is None:
            coef = coef.scatter_add(1, positive, -(0.5 / bits + c_s).unsqueeze(1))
            const = torch.full_like(c_s, -0.5 / bits)
        else:
            const = c_s
        ones = torch.ones(1, bits, dtype=z.dtype, device=z.device)
        basis = torch.cat([ctx.signed, ones]).T.expand(batch, -1, -1)  # B x K x (N + 1)
        coefs = torch.cat([coef, const.unsqueeze(1)], dim=1) * w.unsqueeze(1)
        grad = torch.sigmoid(z).mul_((w / bits).unsqueeze(1))
        grad.addcmul_(z, (w * delta).unsqueeze(1))
        if target is not None:
            grad.addcmul_(target, (-(1.0 / bits + 2.0 * c_s) * w).unsqueeze(1))
        grad.baddbmm_(basis, coefs)
        return grad.view(ctx.shape).to(ctx.dtype), None, None, None, None, None, None, None
