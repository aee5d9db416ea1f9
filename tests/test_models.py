"""One base test every model configuration passes, plus backbone/ELN specifics."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from segloop.errors import SegloopError
from segloop.params import ModelParams
from training.models import build_eln, build_model, eln_inputs
from training.models.resnet import ResNet, load_torchvision_weights

CONFIGS = {
    "tiny-os8": ModelParams(),
    "tiny-os16": ModelParams(output_stride=16),
    "resnet18-os16": ModelParams(backbone="resnet18", output_stride=16, decoder_channels=32),
    "resnet50-os8": ModelParams(backbone="resnet50", output_stride=8, decoder_channels=32),
    "tiny-ecoc": ModelParams(head="ecoc", ecoc={"bits": 12, "min_distance": 4}),
    "tiny-prototype": ModelParams(head="prototype"),
}
NUM_CLASSES = 5  # nothing may assume 19


def _models() -> list[tuple[str, torch.nn.Module, int]]:
    out: list[tuple[str, torch.nn.Module, int]] = [
        (name, build_model(p, NUM_CLASSES), 3) for name, p in CONFIGS.items()
    ]
    out.append(("eln-tiny", build_eln(ModelParams(), NUM_CLASSES), 3 + NUM_CLASSES + 1))
    return out


@pytest.mark.parametrize(("name", "model", "channels"), _models(), ids=lambda v: str(v)[:14])
def test_model_base(name: str, model: torch.nn.Module, channels: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    outputs = 1 if name.startswith("eln") else NUM_CLASSES
    x = torch.randn(2, channels, 64, 96)
    model.train()
    y = model(x)
    assert y.shape == (2, outputs, 64, 96)
    y.square().mean().backward()
    # the projection head serves contrastive losses, not forward(); all else must get gradients
    grads = [p.grad for n, p in model.named_parameters() if not n.startswith("projection.")]
    parts = model.forward_parts(x)
    assert parts.raw.shape[2:] == parts.feature.shape[2:] == (16, 24)  # the /4 decoder grid
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)

    model.eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["scores"],
        dynamic_axes={"input": {0: "batch"}, "scores": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, channels, 64, 96)  # a batch size the export never saw
    with torch.no_grad():
        expected = model(x3).numpy()
    (got,) = session.run(None, {"input": x3.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def _torchvision_keys(depth: str) -> set[str]:
    """The key set of torchvision.models.resnetX().state_dict(), written out by its rules."""
    bottleneck = depth in ("resnet50", "resnet101")
    blocks = {
        "resnet18": (2, 2, 2, 2),
        "resnet34": (3, 4, 6, 3),
        "resnet50": (3, 4, 6, 3),
        "resnet101": (3, 4, 23, 3),
    }[depth]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", "fc.weight", "fc.bias", *(f"bn1.{k}" for k in bn)}
    for layer, count in enumerate(blocks, start=1):
        for b in range(count):
            prefix = f"layer{layer}.{b}"
            for i in range(1, 4 if bottleneck else 3):
                keys.add(f"{prefix}.conv{i}.weight")
                keys.update(f"{prefix}.bn{i}.{k}" for k in bn)
            if b == 0 and (layer > 1 or bottleneck):
                keys.add(f"{prefix}.downsample.0.weight")
                keys.update(f"{prefix}.downsample.1.{k}" for k in bn)
    return keys


@pytest.mark.parametrize("depth", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_resnet_keys_match_torchvision(depth: str) -> None:
    own = set(ResNet(depth).state_dict())
    expected = _torchvision_keys(depth)
    assert own | {"fc.weight", "fc.bias"} == expected
    assert (
        len(expected)
        == {"resnet18": 122, "resnet34": 218, "resnet50": 320, "resnet101": 626}[depth]
    )


def test_pretrained_checkpoint_loads(tmp_path: Path) -> None:
    source = ResNet("resnet18")
    state = {
        **source.state_dict(),
        "fc.weight": torch.zeros(1000, 512),
        "fc.bias": torch.zeros(1000),
    }
    torch.save(state, tmp_path / "r18.pth")
    model = build_model(ModelParams(backbone="resnet18", pretrained=tmp_path / "r18.pth"), 3)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    # the ELN's conv1 has 3 + C + 1 inputs: it stays random, everything else loads
    eln_backbone = ResNet("resnet18", in_channels=9)
    missing = load_torchvision_weights(eln_backbone, tmp_path / "r18.pth")
    assert missing == ["conv1.weight"]
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(SegloopError, match="not a torchvision ResNet"):
        load_torchvision_weights(ResNet("resnet18"), tmp_path / "other.pth")


def test_eln_inputs_entropy_hand_computed() -> None:
    image = torch.zeros(1, 3, 1, 2)
    probs = torch.tensor([[[[0.25, 1.0]], [[0.25, 0.0]], [[0.25, 0.0]], [[0.25, 0.0]]]])
    x = eln_inputs(image, probs)
    assert x.shape == (1, 3 + 4 + 1, 1, 2)
    # uniform over 4 classes: entropy ln 4; one-hot: 0
    assert x[0, -1, 0].tolist() == pytest.approx([np.log(4.0), 0.0], abs=1e-6)


def test_eln_reliability_is_a_probability() -> None:
    eln = build_eln(ModelParams(), 4).eval()
    probs = torch.softmax(torch.randn(2, 4, 32, 32), dim=1)
    with torch.no_grad():
        rel = eln.predict_reliability(torch.randn(2, 3, 32, 32), probs)
    assert rel.shape == (2, 1, 32, 32) and float(rel.min()) >= 0 and float(rel.max()) <= 1


def test_tiny_backbone_is_small() -> None:
    params = sum(p.numel() for p in build_model(ModelParams(), 19).parameters())
    assert params < 1_000_000
