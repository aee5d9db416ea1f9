"""``segloop predict``'s folder stamp: a predictions folder never mixes maps of two
checkpoints or two confidence encodings."""

from __future__ import annotations

import json
from pathlib import Path

from training.predict import OUTPUTS, STAMP_FILE, claim_folder, predictor_stamp


def _maps(out: Path) -> list[Path]:
    paths = [out / name / "a.png" for name in OUTPUTS]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png")
    return paths


def _stamp(tmp_path: Path, weights: bytes) -> dict[str, object]:
    checkpoint = tmp_path / f"{len(weights)}.pt"
    checkpoint.write_bytes(weights)
    return predictor_stamp(checkpoint, (32, 64), 0.25)


def test_stamp_names_checkpoint_bytes_encoding_and_window(tmp_path: Path) -> None:
    one, two = _stamp(tmp_path, b"a"), _stamp(tmp_path, b"bb")
    # sha256(b"a"), computed independently
    assert one["checkpoint_sha256"] == (
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
    assert one["checkpoint_sha256"] != two["checkpoint_sha256"]
    assert "-ln(1 - c)" in str(one["confidence_encoding"])
    assert one["window"] == [32, 64] and one["overlap"] == 0.25


def test_fresh_folder_is_stamped(tmp_path: Path) -> None:
    stamp = _stamp(tmp_path, b"a")
    assert claim_folder(tmp_path / "pool", stamp) is False
    assert json.loads((tmp_path / "pool" / STAMP_FILE).read_text()) == stamp


def test_same_stamp_keeps_maps_for_resume(tmp_path: Path) -> None:
    stamp, out = _stamp(tmp_path, b"a"), tmp_path / "pool"
    claim_folder(out, stamp)
    maps = _maps(out)
    assert claim_folder(out, stamp) is False
    assert all(p.exists() for p in maps)


def test_other_checkpoint_removes_maps(tmp_path: Path) -> None:
    out = tmp_path / "pool"
    claim_folder(out, _stamp(tmp_path, b"a"))
    maps = _maps(out)
    other = _stamp(tmp_path, b"bb")
    assert claim_folder(out, other) is True
    assert not any(p.exists() for p in maps)
    assert json.loads((out / STAMP_FILE).read_text()) == other


def test_unstamped_or_unreadable_stamp_maps_are_removed(tmp_path: Path) -> None:
    """Maps written before stamps existed (linear confidence levels) are not resumed."""
    out = tmp_path / "pool"
    maps = _maps(out)
    assert claim_folder(out, _stamp(tmp_path, b"a")) is True
    assert not any(p.exists() for p in maps)
    maps = _maps(out)
    (out / STAMP_FILE).write_text("{ truncated")
    assert claim_folder(out, _stamp(tmp_path, b"a")) is True
    assert not any(p.exists() for p in maps)


def test_other_files_in_the_folder_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "pool"
    _maps(out)
    (out / "notes.txt").write_text("mine")
    claim_folder(out, _stamp(tmp_path, b"a"))
    assert (out / "notes.txt").read_text() == "mine"
