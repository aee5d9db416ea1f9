"""ECOC, ELN and DeS4 equations on hand-computed cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segloop.errors import SegloopError
from segloop.params import load_params
from training.methods.des4 import (
    multi_entropy_sample,
    unbiased_weights,
    update_prototypes,
)
from training.methods.ecoc import (
    build_codebook,
    decode_scores,
    ecoc_loss,
    hybrid_bits,
    min_row_distance,
    reliable_bit_mask,
)
from training.methods.eln import (
    aux_indicators,
    balanced_bce,
    constrained_aux_loss,
    correctness,
    eln_mask,
    pixel_contrastive_loss,
)
from training.models.heads import EcocHead, PrototypeHead

# --- ECOC --------------------------------------------------------------------------------


def test_codebook_meets_and_reports_min_distance() -> None:
    codebook = build_codebook(19, 40, min_distance=8, seed=0)
    assert codebook.shape == (19, 40) and set(np.unique(codebook)) <= {0, 1}
    assert min_row_distance(codebook) >= 8
    assert (codebook.min(0) != codebook.max(0)).all()  # no constant column
    # 19 codewords of 8 bits cannot be 6 apart (Plotkin bound): rejected, not weakened
    with pytest.raises(SegloopError, match="minimum row Hamming distance 6"):
        build_codebook(19, 8, min_distance=6, trials=50, climb_steps=50)


def test_min_row_distance_hand_computed() -> None:
    assert min_row_distance(np.array([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]])) == 2


def test_decoding_equals_soft_hamming_and_einsum() -> None:
    torch.manual_seed(0)
    codebook = torch.tensor(build_codebook(5, 12, 4, trials=200), dtype=torch.float32)
    p = torch.rand(2, 12, 3, 4)
    scores = decode_scores(p, codebook)
    k = codebook.shape[1]
    d_sh = (p[:, None] - codebook[None, :, :, None, None]).abs().mean(dim=2)  # B x N x H x W
    torch.testing.assert_close(scores, k * (1 - d_sh))
    einsum = torch.einsum("bkhw,nk->bnhw", p, 2 * codebook - 1) + (1 - codebook).sum(1).view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(scores, einsum)


def test_reliable_bits_on_a_constructed_pixel() -> None:
    codebook = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    p = torch.tensor([0.02, 0.02, 0.45, 0.6]).view(1, 4, 1, 1)
    # scores: c0 = .98+.98+.55+.40 = 2.91, c1 = .98+.98+.45+.60 = 3.01 -> top-1 c1, then c0.
    # j=1: mean confidence (.98+.98+.55+.60)/4 = 0.7775 < 0.95; j=2: c1 and c0 agree on bits
    # 0, 1 with confidence 0.98 -> M = [1, 1, 0, 0].
    mask, top = reliable_bit_mask(p, codebook, top=3, theta=0.95)
    assert mask.flatten().tolist() == [1, 1, 0, 0] and int(top) == 1
    hybrid = hybrid_bits(p, codebook, mask, top)
    # code bits 0, 1 from c1 (0, 0); bits 2, 3 from thresholding p (0, 1): not a codeword
    assert hybrid.flatten().tolist() == [0, 0, 0, 1]
    confident = torch.tensor([0.99, 0.99, 0.01, 0.01]).view(1, 4, 1, 1)
    mask, top = reliable_bit_mask(confident, codebook, top=3, theta=0.95)
    assert mask.flatten().tolist() == [1, 1, 1, 1] and int(top) == 2  # j = 1: whole codeword


def test_ecoc_loss_hand_computed() -> None:
    codebook = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    logits = torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1)
    target = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)
    bce = math.log(1 + math.exp(-1))  # both bits right with margin 1
    pcc = math.log1p(math.exp(-1 / 0.5))  # the other codeword has cosine -1
    loss = ecoc_loss(logits, target, torch.tensor([[[0]]]), torch.ones(1, 1, 1), codebook)
    assert float(loss) == pytest.approx(bce + 5 * 0.0 + 2 * pcc, rel=1e-5)
    ignored = ecoc_loss(logits, target, torch.tensor([[[255]]]), torch.zeros(1, 1, 1), codebook)
    assert float(ignored) == 0.0


def test_winner_confidence_per_head_hand_computed() -> None:
    from training.models.heads import SoftmaxHead

    ecoc = EcocHead(2, np.array([[0, 0, 1, 1], [1, 1, 0, 1]]), dropout=0.0)
    # bit probabilities .9 .9 .2 .5: agreement with codeword 0 = (.1 + .1 + .2 + .5) = 0.9,
    # with codeword 1 = (.9 + .9 + .8 + .5) = 3.1 -> 1 - d_SH of the winner = 3.1 / 4
    bits = torch.logit(torch.tensor([0.9, 0.9, 0.2, 0.5])).view(1, 4, 1, 1)
    scores = ecoc.class_scores(bits)
    torch.testing.assert_close(scores.flatten(), torch.tensor([0.9, 3.1]))
    assert float(ecoc.winner_confidence(scores)) == pytest.approx(3.1 / 4)
    softmax = SoftmaxHead(2, 3, dropout=0.0)
    logits = torch.tensor([0.0, math.log(3.0), -math.inf]).view(1, 3, 1, 1)
    assert float(softmax.winner_confidence(logits)) == pytest.approx(0.75)  # 3 / (1 + 3)


def test_predict_writes_the_heads_winner_confidence() -> None:
    from training.models import build_model
    from training.predict import probs_and_confidence

    params = load_params(
        None, ["model.head=ecoc", "model.ecoc.bits=6", "model.ecoc.min_distance=2"]
    )
    model = build_model(params.model, 3).eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = probs_and_confidence(model, image)
        scores = model(image)
    torch.testing.assert_close(maps[:, :3], torch.softmax(scores, dim=1))
    torch.testing.assert_close(maps[:, 3], scores.amax(dim=1) / 6)


def test_ecoc_confidence_is_the_mean_bit_confidence() -> None:
    from training.models import build_model
    from training.objectives import HeadObjective

    params = load_params(
        None, ["model.head=ecoc", "model.ecoc.bits=4", "model.ecoc.min_distance=2"]
    )
    head = HeadObjective(build_model(params.model, 3), params)
    raw = torch.tensor([2.0, -2.0, 0.0, math.log(9.0)]).view(1, 4, 1, 1)  # p = .88, .12, .5, .9
    expected = (2 / (1 + math.exp(-2)) + 0.5 + 0.9) / 4  # max(p, 1 - p) per bit, averaged
    assert float(head.confidence(raw, torch.empty(0))) == pytest.approx(expected, rel=1e-6)


def _reliable_bits_by_definition(
    p: torch.Tensor, codebook: torch.Tensor, top: int, theta: float
) -> torch.Tensor:
    """The mining rule pixel by pixel, straight from its statement."""
    batch, _, height, width = p.shape
    mask = torch.zeros_like(p)
    scores = decode_scores(p, codebook)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                order = scores[b, :, y, x].argsort(descending=True)[:top]
                bit_conf = 0.5 + (p[b, :, y, x] - 0.5).abs()
                for j in range(1, len(order) + 1):
                    codes = codebook[order[:j]]
                    shared = (codes == codes[0]).all(dim=0)
                    mean = bit_conf[shared].mean() if shared.any() else torch.tensor(1.0)
                    if mean > theta:
                        mask[b, :, y, x] = shared.float()
                        break
    return mask


def test_reliable_bits_equal_the_rule_on_random_pixels() -> None:
    torch.manual_seed(0)
    codebook = torch.tensor(build_codebook(7, 10, 3, trials=200), dtype=torch.float32)
    # sharp and soft pixels: some decide at j = 1, some later, some never
    p = torch.sigmoid(torch.randn(2, 10, 6, 5) * torch.tensor([1.0, 8.0]).view(2, 1, 1, 1))
    for theta in (0.7, 0.9):
        mask, top = reliable_bit_mask(p, codebook, top=4, theta=theta)
        expected = _reliable_bits_by_definition(p, codebook, 4, theta)
        assert 0 < expected.sum() < expected.numel()  # the case mixes kept and dropped bits
        torch.testing.assert_close(mask, expected)
        assert torch.equal(top, decode_scores(p, codebook).argmax(dim=1))


@pytest.mark.parametrize("targets", ["codeword", "codeword-implicit", "hybrid"])
def test_ecoc_loss_equals_the_per_pixel_sum_with_ignored_pixels(targets: str) -> None:
    """The loss and its gradient against the per-pixel definition, for explicit codeword
    targets, for the codeword implied by the class (``target_bits=None``) and for hybrid
    targets that differ from every codeword."""
    torch.manual_seed(0)
    codebook = torch.tensor(build_codebook(5, 8, 3, trials=200), dtype=torch.float32)
    logits = torch.randn(2, 8, 3, 4, requires_grad=True)
    classes = torch.randint(0, 5, (2, 3, 4))
    classes[0, 0] = 255
    weight = torch.rand(2, 3, 4)
    weight[0, 0] = 0.0
    weight[1, 2, :2] = 0.0
    target = codebook[classes.clamp(max=4)].permute(0, 3, 1, 2)
    if targets == "hybrid":
        target = torch.where(torch.rand(target.shape) < 0.3, 1 - target, target)
    given = None if targets == "codeword-implicit" else target
    loss = ecoc_loss(logits, given, classes, weight, codebook, w_pcd=5.0, w_pcc=2.0, tau=0.5)
    loss.backward()
    grad = logits.grad.clone()
    logits.grad = None
    total = torch.zeros(())
    signed = 2 * codebook - 1
    for b, y, x in np.ndindex(2, 3, 4):
        if weight[b, y, x] == 0:
            continue
        z, t, n = logits[b, :, y, x], target[b, :, y, x], int(classes[b, y, x])
        bce = F.binary_cross_entropy_with_logits(z, t)
        pcd = 1 - F.cosine_similarity(z, 2 * t - 1, dim=0)
        cos = F.cosine_similarity(z[None], signed, dim=1)
        pcc = torch.log1p(sum(torch.exp(cos[m] / 0.5) for m in range(5) if m != n))
        total = total + weight[b, y, x] * (bce + 5 * pcd + 2 * pcc)
    expected = total / weight.sum()
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, logits.grad)
    assert grad[0, :, 0, 0].abs().sum() == 0  # an ignored pixel gets no gradient


def test_ecoc_loss_stays_float32_under_autocast() -> None:
    """Under AMP the loss is still computed in float32 (autocast would run its codeword product
    in half precision)."""
    torch.manual_seed(0)
    codebook = torch.tensor(build_codebook(5, 8, 3, trials=200), dtype=torch.float32)
    logits = torch.randn(2, 8, 6, 6) * 3
    classes = torch.randint(0, 5, (2, 6, 6))
    weight = torch.ones(2, 6, 6)
    plain = ecoc_loss(logits, None, classes, weight, codebook)  # no autocast: float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = ecoc_loss(logits, None, classes, weight, codebook)
    assert mixed.dtype == torch.float32
    assert float(mixed) == pytest.approx(float(plain), rel=1e-6)  # bfloat16 here: 2e-5 off


def test_ecoc_head_exports_decoding_to_onnx(tmp_path) -> None:
    import onnxruntime as ort

    class Scores(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = EcocHead(8, build_codebook(4, 10, 3, trials=100), dropout=0.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head.class_scores(self.head(x))

    model = Scores().eval()
    x = torch.randn(2, 8, 5, 6)
    torch.onnx.export(
        model,
        (x,),
        str(tmp_path / "h.onnx"),
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    got = ort.InferenceSession(str(tmp_path / "h.onnx")).run(None, {"x": x[:1].numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x[:1]).numpy(), atol=1e-5)


# --- ELN ---------------------------------------------------------------------------------


def test_constrained_aux_indicator_is_per_image() -> None:
    main = torch.tensor([0.1, 0.2])
    aux = [torch.tensor([3.0, 3.0]), torch.tensor([1.0, 20.0])]
    # decoder 1 (alpha 20): bounds 2 and 4 -> trains on image 0 only: mean(3, 0) = 1.5
    # decoder 2 (alpha 50): bounds 5 and 10 -> image 1 only: mean(0, 20) = 10
    indicators = aux_indicators(aux, main, [20, 50])
    assert [i.tolist() for i in indicators] == [[1.0, 0.0], [0.0, 1.0]]
    assert float(constrained_aux_loss(aux, indicators)) == pytest.approx(11.5)


def test_balanced_bce_weights_errors_by_class_ratio() -> None:
    prediction = torch.tensor([[[0, 1, 2, 3, 0]]])
    labels = torch.tensor([[[0, 1, 2, 0, 255]]])
    correct, valid = correctness(prediction, labels)
    assert correct.flatten().tolist() == [True, True, True, False, False]
    assert valid.flatten().tolist() == [True, True, True, True, False]
    loss = balanced_bce(torch.zeros(1, 1, 5), correct, valid)
    # every BCE is ln 2 at logit 0; weights 1, 1, 1, w0 = 3/1 over 4 valid pixels
    assert float(loss) == pytest.approx(6 * math.log(2) / 4)


def test_eln_mask_rounds_sigmoid() -> None:
    assert eln_mask(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [False, False, True]


def test_pixel_contrastive_matches_the_equation() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4)
    labels = torch.tensor([[[0, 0, 1, 1]]])
    valid = torch.tensor([[[True, True, True, False]]])
    tau = 0.5
    loss = pixel_contrastive_loss(
        student, teacher, labels, valid, tau, 100, torch.Generator().manual_seed(0)
    )
    s = F.normalize(student[0, :, 0].T, dim=1)
    t = F.normalize(teacher[0, :, 0].T, dim=1)
    d = lambda i, j: math.exp(float(s[i] @ t[j]) / tau)  # noqa: E731
    y = [0, 0, 1]
    expected = 0.0
    for i in range(3):
        negatives = sum(d(i, k) for k in range(3) if y[k] != y[i])
        positives = [j for j in range(3) if y[j] == y[i]]
        expected -= sum(math.log(d(i, j) / (d(i, j) + negatives)) for j in positives) / len(
            positives
        )
    assert float(loss) == pytest.approx(expected / 3, rel=1e-5)


# --- DeS4 --------------------------------------------------------------------------------


def test_prototype_head_is_scaled_cosine() -> None:
    head = PrototypeHead(channels=2, num_classes=2, scale=10.0)
    head.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    out = head(torch.tensor([3.0, 3.0]).view(1, 2, 1, 1)).flatten()
    assert out.tolist() == pytest.approx([10 / math.sqrt(2), 10 / math.sqrt(2)])
    assert not list(head.parameters())  # non-learnable


def test_unbiased_weights_emphasise_uncertain_pixels() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.9, 0.3], [0.5, 0.1, 0.7]])).view(1, 2, 1, 3)
    labels = torch.tensor([[[0, 0, 255]]])
    w = unbiased_weights(logits, labels).flatten()
    assert w.tolist() == pytest.approx([0.25 / 0.26, 0.01 / 0.26, 0.0])


def test_multi_entropy_sampling_zone_quotas() -> None:
    # five zones with 20 pixels each at entropies 0, 1, 2, 3, 4 (width 0.8)
    ent = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]).repeat_interleave(20)
    weights = [1 / (0.1 + e) for e in (0.0, 1.0, 2.0, 3.0, 4.0)]
    # shares 16.73, 1.52, 0.80, 0.54, 0.41: floors 16, 1, 0, 0, 0 and the 3 left go to the
    # largest remainders (0.80, 0.73, 0.54)
    expected = [17, 1, 1, 1, 0]
    assert sum(expected) == 20 and [int(20 * w / sum(weights)) for w in weights][:2] == [16, 1]
    picked = multi_entropy_sample(ent, 20, 5, 0.1, torch.Generator().manual_seed(0))
    counts = [int((ent[picked] == e).sum()) for e in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert counts == expected
    assert picked.unique().numel() == picked.numel()  # without replacement
    # a quota of 1 over several zones still yields one sample (rounding never empties it)
    assert multi_entropy_sample(ent, 1, 5, 0.1, torch.Generator().manual_seed(0)).numel() == 1


def test_multi_entropy_short_zone_hands_over_its_remainder() -> None:
    ent = torch.cat([torch.zeros(3), torch.full((50,), 4.0)])  # low zone has only 3 pixels
    picked = multi_entropy_sample(ent, 20, 5, 0.1, torch.Generator().manual_seed(0))
    assert int((ent[picked] == 0).sum()) == 3
    assert picked.numel() == 20  # the shortfall is taken from the high zone


def test_prototype_ema_update() -> None:
    head = PrototypeHead(channels=2, num_classes=2, scale=10.0)
    head.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    features = torch.tensor([0.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2).contiguous()
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    logits = torch.zeros(1, 2, 2, 2)
    update_prototypes(
        head, features, logits, labels, torch.ones(2), 0.9, 5, 0.1, torch.Generator().manual_seed(0)
    )
    expected = F.normalize(torch.tensor([0.9, 0.1]), dim=0)
    assert head.prototypes[0].tolist() == pytest.approx(expected.tolist())
    assert head.prototypes[1].tolist() == [0.0, 1.0]  # absent class untouched
