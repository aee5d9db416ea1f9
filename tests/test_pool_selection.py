"""Offline selection between rounds: predict the pool, select with DARS + reliability, train
on the selected pseudo-labels."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segloop.datasets import read_mask
from segloop.imageio import write_png
from segloop.params import Params
from segloop.pool_selection import quality_counts, select_pool
from segloop.splits import make_split, read_split, split_samples, write_split
from segloop.synth import write_dataset
from segloop.taxonomy import CITYSCAPES, Taxonomy


def test_quality_counts_hand_computed() -> None:
    pseudo = np.array([[0, 1, 255, 2, 1]], dtype=np.uint8)
    truth = np.array([[0, 2, 1, 2, 255]], dtype=np.uint8)
    # kept and labeled: pixels 0, 1, 3 (2 right); ground truth: pixels 0-3; pixel 4 is ignore
    assert quality_counts(pseudo, truth) == (2, 3, 4)


def test_select_pool_on_hand_built_predictions(tmp_path: Path) -> None:
    toy = Taxonomy("toy", ("a", "b"), ((0, 0, 0), (1, 1, 1)))
    pred = tmp_path / "pred"
    # one frame of 100 pixels: 80 predicted "a" at confidence level 250, 20 "b" at level 100
    label = np.array([0] * 80 + [1] * 20, dtype=np.uint8).reshape(10, 10)
    confidence = np.where(label == 0, 250, 100).astype(np.uint8)
    reliability = np.full((10, 10), 255, dtype=np.uint8)
    reliability[0, :5] = 0  # five "a" pixels the ELN rejects
    for name, array in (("label", label), ("confidence", confidence), ("reliability", reliability)):
        write_png(pred / name / "f.png", array)
    labeled = [np.array([[0, 1]], dtype=np.uint8)]  # prior 1/2, 1/2
    params = Params().selection.model_copy(
        update={"predictions": pred, "out": tmp_path / "out", "alpha": 0.4, "annotate_next": 1}
    )
    summary = select_pool(["f.png"], labeled, toy, params)
    # budget 0.4 * 100 * 1/2 = 20 per class: "a" samples 20 of its 80 ties, "b" keeps all 20;
    # the ELN then removes the rejected ones among the kept "a" pixels
    out = cv2.imread(str(tmp_path / "out" / "f.png"), cv2.IMREAD_GRAYSCALE)
    assert int((out == 1).sum()) == 20
    assert 15 <= int((out == 0).sum()) <= 20
    assert summary["classes"]["a"]["sampling_ratio"] == pytest.approx(0.25)
    # thresholds are reported as confidences: level v stands for 1 - 1e-6 ** (v / 255)
    assert summary["classes"]["a"]["threshold"] == pytest.approx(1 - 1e-6 ** (250 / 255))
    assert summary["classes"]["b"]["threshold"] == pytest.approx(1 - 1e-6 ** (100 / 255))
    assert (tmp_path / "out" / "annotate_next.txt").read_text() == "f.png\n"
    assert json.loads((tmp_path / "out" / "selection.json").read_text())["frames"] == 1


def test_select_pool_measures_quality_and_ignores_thread_count(tmp_path: Path) -> None:
    toy = Taxonomy("toy", ("a", "b"), ((0, 0, 0), (1, 1, 1)))
    pred, keys, truths = tmp_path / "pred", [], []
    rng = np.random.default_rng(0)
    for i in range(12):
        key = f"f{i}.png"
        label = rng.integers(0, 2, (8, 8)).astype(np.uint8)
        write_png(pred / "label" / key, label)
        write_png(pred / "confidence" / key, rng.integers(0, 256, (8, 8)).astype(np.uint8))
        truth = label.copy()
        truth[0] = 1 - truth[0]  # the first row of every frame is predicted wrong
        write_png(tmp_path / "gt" / key, truth)
        keys.append(key)
        truths.append(tmp_path / "gt" / key)
    labeled = [np.array([[0, 1]], dtype=np.uint8)]
    outputs = []
    for workers in (1, 3):
        params = Params().selection.model_copy(
            update={"predictions": pred, "out": tmp_path / f"out{workers}", "alpha": 0.5}
        )
        summary = select_pool(keys, labeled, toy, params, truths=truths, workers=workers)
        frames = [cv2.imread(str(tmp_path / f"out{workers}" / k), 0) for k in keys]
        correct = sum(
            int(((f != 255) & (f == g)).sum())
            for f, g in zip(frames, [cv2.imread(str(t), 0) for t in truths], strict=True)
        )
        kept = sum(int((f != 255).sum()) for f in frames)
        assert summary["quality"]["precision"] == pytest.approx(correct / kept)
        assert summary["quality"]["coverage"] == pytest.approx(kept / (12 * 64))
        assert 0 < summary["quality"]["precision"] < 1
        outputs.append(frames)
    for one, three in zip(*outputs, strict=True):
        np.testing.assert_array_equal(one, three)


def test_select_pool_rejects_a_truth_list_of_the_wrong_length(tmp_path: Path) -> None:
    write_png(tmp_path / "pred" / "label" / "f.png", np.zeros((2, 2), np.uint8))
    params = Params().selection.model_copy(
        update={"predictions": tmp_path / "pred", "out": tmp_path / "out"}
    )
    with pytest.raises(ValueError, match="1 ground-truth masks for 2 pool frames"):
        select_pool(["f.png", "g.png"], [], CITYSCAPES, params, truths=[tmp_path / "t.png"])


@pytest.mark.slow
def test_predict_select_and_train_on_pseudo_labels(tiny_params: Params) -> None:
    from training.checkpoint import eln_from_checkpoint, load_checkpoint, model_from_checkpoint
    from training.predict import predict_frames
    from training.trainer import Trainer

    data = tiny_params.data
    write_dataset(data.root, data.synth)
    write_split(make_split(data), data)
    root = tiny_params.train.out_dir.parent
    params = tiny_params.model_copy(
        update={
            "train": tiny_params.train.model_copy(update={"steps": 20, "eval_every": 20}),
            "methods": tiny_params.methods.model_copy(
                update={"eln": tiny_params.methods.eln.model_copy(update={"enabled": True})}
            ),
            "selection": tiny_params.selection.model_copy(
                update={"predictions": root / "pool", "out": root / "pseudo", "alpha": 0.5}
            ),
        }
    )
    Trainer(params).run()
    state = load_checkpoint(params.train.out_dir / "best.pt")
    model, taxonomy = model_from_checkpoint(state)
    eln = eln_from_checkpoint(state, taxonomy.num_classes)
    assert eln is not None
    pool = split_samples(data, "unlabeled", with_masks=False)
    written = predict_frames(model, eln, pool, root / "pool", torch.device("cpu"), (32, 64), 1 / 3)
    assert written == len(pool) == 36
    assert (
        predict_frames(model, eln, pool, root / "pool", torch.device("cpu"), (32, 64), 1 / 3) == 0
    )  # a rerun resumes: nothing left to do

    masks = [
        read_mask(s.mask, CITYSCAPES)
        for s in split_samples(data, "labeled", True)
        if s.mask is not None
    ]
    summary = select_pool([s.key for s in pool], masks, CITYSCAPES, params.selection)
    assert 0 < summary["kept_fraction"] <= 0.5 + 1e-6
    assert len((root / "pseudo" / "annotate_next.txt").read_text().split()) == 36

    round1 = params.model_copy(
        update={
            "train": params.train.model_copy(update={"out_dir": root / "round1", "steps": 6}),
            "methods": params.methods.model_copy(update={"pseudo_labels": root / "pseudo"}),
        }
    )
    trainer = Trainer(round1)
    assert trainer.pseudo is not None and len(trainer.pseudo) == 36
    assert trainer.run().steps == 6
    assert read_split(data.split.dir, "unlabeled") == [s.key for s in pool]
