import json
from importlib import metadata

import numpy as np
import pytest
import torch

from segloop.params import Params
from segloop.splits import make_split, write_split
from segloop.synth import write_dataset
from training.data import StepSampler, train_transform
from training.schedule import poly_lr
from training.trainer import Trainer


def test_poly_lr_hand_computed() -> None:
    assert poly_lr(1.0, 0, 100, 0.9, 0) == 1.0
    assert poly_lr(1.0, 50, 100, 1.0, 0) == pytest.approx(0.5)
    assert poly_lr(1.0, 75, 100, 2.0, 0) == pytest.approx(0.0625)
    assert poly_lr(1.0, 0, 100, 0.9, 4) == pytest.approx(0.25)  # warm-up step 1 of 4


def test_step_sampler_is_a_function_of_seed_and_step() -> None:
    a = StepSampler(10, 4, seed=3, steps=6)
    b = StepSampler(10, 4, seed=3, steps=6, start=3)
    assert list(a)[3:] == list(b)
    first_epoch = [i for batch in list(a)[:2] for i, _ in batch] + [i for i, _ in a.batch(2)[:2]]
    assert sorted(first_epoch) == list(range(10))  # each frame once per epoch


def test_transform_keeps_image_and_mask_aligned() -> None:
    params = Params().train.model_copy(update={"crop": (48, 64), "color_jitter": 0.0})
    transform = train_transform(params)
    # 4 vertical bands: band b has class b and grey level 40 * (b + 1)
    mask = np.repeat(np.arange(4, dtype=np.uint8), 16)[None].repeat(48, axis=0)
    image = np.repeat((40 * (mask.astype(np.int32) + 1)).astype(np.uint8)[..., None], 3, axis=2)
    for seed in range(20):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        img, msk = out["image"][..., 0].astype(int), out["mask"]
        assert img.shape == msk.shape == (48, 64)
        labeled = msk != 255
        expected = 40 * (msk.astype(int) + 1)
        agree = np.abs(img - expected) <= 2
        assert agree[labeled].mean() > 0.9  # only band edges may blend under interpolation
        assert (img[~labeled] == 0).all()  # padding: black image, ignore label


@pytest.fixture
def tiny_data(tiny_params: Params) -> Params:
    write_dataset(tiny_params.data.root, tiny_params.data.synth)
    write_split(make_split(tiny_params.data), tiny_params.data)
    return tiny_params


def _with(params: Params, **train: object) -> Params:
    return params.model_copy(update={"train": params.train.model_copy(update=train)})


@pytest.mark.parametrize("rare_classes", [False, True], ids=["uniform", "rare-class sampling"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    tiny_data: Params, rare_classes: bool
) -> None:
    root = tiny_data.train.out_dir
    rcs = tiny_data.train.rare_class_sampling.model_copy(update={"enabled": rare_classes})
    common = {
        "steps": 8,
        "checkpoint_every": 4,
        "eval_every": 100,
        "log_every": 1,
        "rare_class_sampling": rcs,
    }
    Trainer(_with(tiny_data, out_dir=root / "straight", **common)).run()
    interrupted = _with(tiny_data, out_dir=root / "resumed", **common)
    trainer = Trainer(interrupted)
    assert (trainer.rare_classes is not None) is rare_classes
    first = trainer.run(stop_at=4)
    assert (first.steps, first.start_step) == (4, 0)
    assert not (root / "resumed" / "metrics.json").exists()
    second = Trainer(interrupted).run()
    assert (second.steps, second.start_step) == (8, 4)
    assert json.loads((root / "resumed" / "metrics.json").read_text())["resumed_at_step"] == 4
    a = torch.load(root / "straight" / "last.pt", weights_only=False)["model"]
    b = torch.load(root / "resumed" / "last.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    history = [json.loads(x) for x in (root / "resumed" / "history.jsonl").open()]
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 9))  # none lost or twice


@pytest.mark.slow
def test_end_to_end_train_and_eval_loss_drops(tiny_data: Params) -> None:
    params = _with(tiny_data, steps=60, eval_every=30, log_every=10, lr=0.01)
    result = Trainer(params).run()
    out = params.train.out_dir
    history = [json.loads(x) for x in (out / "history.jsonl").open()]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.7 * losses[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["train_images_per_s"] > 0
    assert metrics["environment"]["packages"]["torch"] == metadata.version("torch")
    kernels = metrics["environment"]["torch_cpu_kernels"]
    assert kernels["capability"] == torch.backends.cpu.get_cpu_capability()
    # a constant-class prediction scores about 0.02 mIoU on these frames
    assert (out / "best.pt").exists() and result.best_miou > 0.05
    assert {h["step"] for h in history if "val_miou" in h} == {30, 60}
