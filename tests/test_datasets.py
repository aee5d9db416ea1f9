from pathlib import Path

import cv2
import numpy as np
import pytest

from segloop.datasets import discover, read_image, read_mask, read_pair, sample_for_key
from segloop.errors import DataError
from segloop.taxonomy import CITYSCAPES
from tests.conftest import make_cityscapes, write_gray, write_rgb


def test_cityscapes_discovery_pairs_masks(tmp_path: Path) -> None:
    keys = make_cityscapes(tmp_path, {"train": 3, "val": 2})
    train = discover(tmp_path, "cityscapes", "train")
    assert [s.key for s in train] == keys[:3]
    assert all(s.mask is not None and s.mask.name.endswith("labelTrainIds.png") for s in train)
    assert len(discover(tmp_path, "cityscapes", "val")) == 2


def test_labelids_masks_are_mapped_to_trainids(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, {"train": 1}, suffix="_gtFine_labelIds.png")
    sample = discover(tmp_path, "cityscapes", "train")[0]
    assert sample.mask is not None
    row = np.repeat(np.array([7, 26, 0, 33], dtype=np.uint8), 8)
    write_gray(sample.mask, np.tile(row, (16, 1)))
    _, mask = read_pair(sample, CITYSCAPES)
    assert mask[0, ::8].tolist() == [0, 13, 255, 18]


def test_folders_layout_with_and_without_split_dirs(tmp_path: Path) -> None:
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    write_rgb(tmp_path / "flat/images/a.jpg", image)
    write_gray(tmp_path / "flat/masks/a.png", np.zeros((4, 6), dtype=np.uint8))
    write_rgb(tmp_path / "flat/images/b.png", image)  # no mask: unlabeled frame
    flat = discover(tmp_path / "flat", "folders", "train")
    assert [(s.key, s.mask is not None) for s in flat] == [
        ("images/a.jpg", True),
        ("images/b.png", False),
    ]
    write_rgb(tmp_path / "split/images/val/c.png", image)
    write_gray(tmp_path / "split/masks/val/c.png", np.ones((4, 6), dtype=np.uint8))
    val = discover(tmp_path / "split", "folders", "val")
    assert val[0].mask == tmp_path / "split/masks/val/c.png"


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset root not found"):
        discover(tmp_path / "nope", "cityscapes", "train")


def test_mask_size_mismatch_names_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, {"train": 1})
    sample = discover(tmp_path, "cityscapes", "train")[0]
    assert sample.mask is not None
    write_gray(sample.mask, np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match=r"mask is 8x8 but its image is 32x16") as info:
        read_pair(sample, CITYSCAPES)
    assert str(sample.mask) in str(info.value)


def test_ids_outside_taxonomy(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    write_gray(path, np.array([[0, 19, 200, 255]], dtype=np.uint8))
    with pytest.raises(DataError, match=r"ids \[19, 200\] are outside"):
        read_mask(path, CITYSCAPES)


def test_unreadable_and_truncated_files(tmp_path: Path) -> None:
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="not a decodable image"):
        read_image(garbage)
    good = tmp_path / "ok.png"
    write_rgb(good, np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match="truncated PNG"):
        read_image(cut)
    ok, jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), dtype=np.uint8))
    assert ok
    cut_jpg = tmp_path / "cut.jpg"
    cut_jpg.write_bytes(jpeg.tobytes()[:-10])
    with pytest.raises(DataError, match="truncated JPEG"):
        read_image(cut_jpg)
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path / "absent.png")


def test_image_modes_are_converted_to_rgb(tmp_path: Path) -> None:
    grey16 = tmp_path / "g16.png"
    cv2.imwrite(str(grey16), np.full((3, 4), 0x8000, dtype=np.uint16))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.full((3, 4, 4), 200, dtype=np.uint8))
    assert read_image(grey16).shape == (3, 4, 3) and read_image(grey16)[0, 0, 0] == 0x80
    assert read_image(rgba).shape == (3, 4, 3)


def test_hidden_ground_truth_is_not_exposed(tmp_path: Path) -> None:
    keys = make_cityscapes(tmp_path, {"train": 1})
    assert sample_for_key(tmp_path, "cityscapes", keys[0], with_mask=False).mask is None
    with pytest.raises(DataError, match="no mask"):
        read_pair(sample_for_key(tmp_path, "cityscapes", keys[0], with_mask=False), CITYSCAPES)
