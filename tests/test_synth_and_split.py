import csv
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from segloop.datasets import discover, read_pair
from segloop.errors import DataError
from segloop.params import Params, load_params
from segloop.splits import make_split, read_split, write_split
from segloop.synth import render_frame, write_dataset
from segloop.taxonomy import CITYSCAPES


def test_frames_are_deterministic_and_valid() -> None:
    a = render_frame(7, 64, 128, "fog")
    b = render_frame(7, 64, 128, "fog")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert a.image.shape == (64, 128, 3) and a.image.dtype == np.uint8
    assert a.label.max() < 19  # every pixel gets a class: no ignore holes
    assert not np.array_equal(render_frame(8, 64, 128, "fog").label, a.label)


def test_conditions_change_appearance_not_labels() -> None:
    day = render_frame(3, 64, 128, "day")
    rain = render_frame(3, 64, 128, "rain")
    assert np.array_equal(day.label, rain.label)
    assert np.abs(day.image.astype(int) - rain.image.astype(int)).mean() > 10
    with pytest.raises(ValueError, match="unknown condition"):
        render_frame(3, 64, 128, "snow")


def test_every_class_appears_across_frames() -> None:
    seen = np.zeros(19, dtype=bool)
    for seed in range(120):
        seen[np.unique(render_frame(seed, 64, 128, "day").label)] = True
    missing = [CITYSCAPES.classes[i] for i in np.flatnonzero(~seen)]
    assert not missing, f"classes never drawn: {missing}"


def test_full_resolution_frame() -> None:
    frame = render_frame(0, 1024, 2048, "rain")
    assert frame.image.shape == (1024, 2048, 3)
    assert frame.label.shape == (1024, 2048)


def test_dataset_layout_and_split(tiny_params: Params) -> None:
    data = tiny_params.data
    counts = write_dataset(data.root, data.synth)
    assert counts == {"train": 48, "val": 8, "rendered": 56}
    train = discover(data.root, "cityscapes", "train")
    assert len(train) == 48 and all(s.mask is not None for s in train)
    image, mask = read_pair(train[0], CITYSCAPES)
    assert image.shape == (32, 64, 3) and mask.shape == (32, 64)
    with (data.root / "conditions.csv").open() as handle:
        conditions = {r["image"]: r["condition"] for r in csv.DictReader(handle)}
    assert len(conditions) == 56

    split = make_split(data)
    assert len(split.labeled) == 12  # 1/4 of 48
    assert len(split.labeled) + len(split.unlabeled) == 48 and len(split.val) == 8
    assert not set(split.labeled) & set(split.unlabeled)
    assert {conditions[k] for k in split.labeled} <= {"day", "dusk"}
    assert "fog" in {conditions[k] for k in split.unlabeled}
    out = write_split(split, data)
    assert read_split(out, "labeled") == split.labeled
    assert '"fraction": 0.25' in (out / "split.json").read_text()
    # rerunning writes nothing new and the same split comes back
    record = json.loads((data.root / "synth.json").read_text())
    assert record["rendered_with"]["packages"]["opencv-python-headless"] == metadata.version(
        "opencv-python-headless"
    )
    # (a rerun that draws nothing keeps the record of the run that drew the frames)
    earlier = {"packages": {"opencv-python-headless": "4.8.0"}}
    (data.root / "synth.json").write_text(json.dumps({**record, "rendered_with": earlier}))
    assert write_dataset(data.root, data.synth)["rendered"] == 0
    assert make_split(data) == split
    assert json.loads((data.root / "synth.json").read_text())["rendered_with"] == earlier


def test_split_without_conditions_file_needs_null(tmp_path: Path) -> None:
    from tests.conftest import make_cityscapes

    make_cityscapes(tmp_path, {"train": 8, "val": 2})
    params = load_params(None, [f"data.root={tmp_path}"])
    with pytest.raises(DataError, match=r"conditions\.csv"):
        make_split(params.data)
    params = load_params(
        None,
        [f"data.root={tmp_path}", "data.split.labeled_conditions=null", "data.split.fraction=1/2"],
    )
    assert len(make_split(params.data).labeled) == 4
