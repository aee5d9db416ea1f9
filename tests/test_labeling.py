"""``segloop label``: sources, manifests, video sampling, bad input, resume after SIGKILL,
stale outputs, and selection from a labeled pool."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_server.backends import open_labeler
from inference_server.backends.onnxruntime_backend import OrtLabeler
from inference_server.manifest import Manifest
from inference_server.sources import expand_inputs, sampled_indices
from segloop.errors import SegloopError
from segloop.label_manifest import read_rows
from tests.conftest import TinyExport, write_rgb

ROOT = Path(__file__).resolve().parents[1]


def _segloop(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segloop.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _images(folder: Path, count: int, size: tuple[int, int] = (32, 64)) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.png"
        write_rgb(path, rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _video(path: Path, frames: int, fps: float = 10.0, size: tuple[int, int] = (32, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (size[1], size[0]))
    for i in range(frames):
        writer.write(np.full((*size, 3), (i * 23) % 256, np.uint8))
    writer.release()
    return path


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))


def test_sampled_indices_by_stride_and_rate() -> None:
    assert sampled_indices(10, 30.0, every=3, fps=None) == [0, 3, 6, 9]
    # 30 fps video at 7 fps: ticks every 30/7 = 4.29 frames -> 0, 4.29, 8.57, 12.86
    assert sampled_indices(14, 30.0, every=1, fps=7.0) == [0, 4, 9, 13]
    # asking for more than the video has keeps every frame once
    assert sampled_indices(4, 10.0, every=1, fps=50.0) == [0, 1, 2, 3]


def test_inputs_folders_globs_lists_and_collisions(tmp_path: Path) -> None:
    _images(tmp_path / "a" / "x", 2)
    (tmp_path / "a" / "notes.md").write_text("not media")
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\na/x/frame_000.png\n\n")
    by_folder = expand_inputs([str(tmp_path / "a")])
    assert [s.key for s in by_folder] == ["x/frame_000.png", "x/frame_001.png"]
    by_glob = expand_inputs([str(tmp_path / "a" / "**" / "*.png")])
    assert [s.key for s in by_glob] == ["x/frame_000.png", "x/frame_001.png"]
    (by_list,) = expand_inputs([str(listing)])
    assert by_list.key == "a/x/frame_000.png" and by_list.path == tmp_path / "a/x/frame_000.png"
    _images(tmp_path / "b" / "x", 1)
    with pytest.raises(SegloopError, match="would both write outputs"):
        expand_inputs([str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(SegloopError, match="no such file"):
        expand_inputs([str(tmp_path / "missing")])
    with pytest.raises(SegloopError, match="matches no image"):
        expand_inputs([str(tmp_path / "*.jpg")])
    listing.write_text("a/x/notes.md\n")
    with pytest.raises(SegloopError, match=r"list.txt:1: .* not an image or video"):
        expand_inputs([str(listing)])


def test_manifest_drops_a_torn_line_and_stale_rows(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    rows = [
        {"frame_id": "a", "engine_hash": "new", "status": "ok"},
        {"frame_id": "b", "engine_hash": "old", "status": "ok"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"frame_id": "c", "eng')
    manifest = Manifest(tmp_path, "new").open()
    assert set(manifest.done) == {"a"} and manifest.stale == 1
    manifest.append({"frame_id": "b", "status": "ok"})
    manifest.close()
    assert [(r["frame_id"], r["engine_hash"]) for r in read_rows(path)] == [
        ("a", "new"),
        ("b", "new"),
    ]


def test_label_images_and_video_with_bad_inputs(tiny_export: TinyExport, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    good = _images(inputs, 5, size=(40, 80))  # not the graph size: resized in, restored out
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "truncated.png").write_bytes(good[0].read_bytes()[:200])
    (inputs / "garbage.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    video = _video(inputs / "clip.mp4", 10)
    truncated = inputs / "cut.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    out = tmp_path / "out"
    result = _segloop(
        "label", str(inputs), "--export-dir", str(tiny_export.export_dir), "--out", str(out),
        "--every", "3", "--set", "label.overlays=true", "--batch-size", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["frame_id"]: r for r in read_rows(out / "manifest.jsonl")}
    ok = {k: r for k, r in rows.items() if r["status"] == "ok"}
    errors = {k: r for k, r in rows.items() if r["status"] == "error"}
    video_ok = sorted(r["frame_index"] for r in ok.values() if r["source"].endswith("clip.mp4"))
    assert video_ok == [0, 3, 6, 9]
    assert {r["timestamp"] for r in ok.values() if r["frame_index"] == 3} == {0.3}
    assert {Path(k).name for k in errors if "cut.mp4" not in k} == {
        "empty.png",
        "truncated.png",
        "garbage.jpg",
    }
    assert any("cut.mp4" in k for k in errors)  # the truncated video is an error, not a crash
    assert len(ok) == 5 + 4 + sum("cut.mp4" in k for k in ok)
    for row in ok.values():
        label = cv2.imread(str(out / row["outputs"]["label"]), cv2.IMREAD_UNCHANGED)
        assert label.shape == (row["height"], row["width"]) and label.max() < 19
        assert sum(row["class_histogram"]) == label.size
        assert 0 <= row["reliable_fraction"] <= 1 and 0 < row["mean_confidence"] <= 1
        for name in ("confidence", "reliability", "overlay"):
            assert (out / row["outputs"][name]).exists()
    assert (out / "label" / "clip" / "000003.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == len(errors) and summary["frames_labeled"] == len(ok)


def test_label_matches_the_runtime_backend_frame_by_frame(
    tiny_export: TinyExport, tmp_path: Path
) -> None:
    paths = _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    result = _segloop(
        "label", str(tmp_path / "in"), "--export-dir", str(tiny_export.export_dir),
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])
    with open_labeler(tiny_export.export_dir, "ort-cpu") as labeler:
        maps = labeler.label(frames)
    for i, path in enumerate(paths):
        written = cv2.imread(str(out / "label" / path.name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(written, maps.label[i])
        reliability = cv2.imread(str(out / "reliability" / path.name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(reliability, maps.reliability[i])


@pytest.mark.parametrize("spin", [True, False])
def test_spin_sets_ort_busy_waiting_and_leaves_labels_alone(
    tiny_export: TinyExport, spin: bool
) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    with open_labeler(tiny_export.export_dir, "ort-cpu") as default:
        expected = default.label(frames)
    with open_labeler(tiny_export.export_dir, "ort-cpu", spin=spin) as labeler:
        assert isinstance(labeler, OrtLabeler)
        options = labeler.session.get_session_options()
        entry = options.get_session_config_entry("session.intra_op.allow_spinning")
        assert entry == ("1" if spin else "0")
        assert np.array_equal(labeler.label(frames).label, expected.label)


def test_resume_after_sigkill_loses_and_duplicates_nothing(
    tiny_export: TinyExport, tmp_path: Path
) -> None:
    count = 120
    _images(tmp_path / "in", count)
    out = tmp_path / "out"
    args = [
        sys.executable, "-m", "segloop.cli", "label", str(tmp_path / "in"),
        "--export-dir", str(tiny_export.export_dir), "--out", str(out), "--batch-size", "2",
        "--set", "label.decode_workers=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if manifest.exists() and len(read_rows(manifest)) >= 10:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the labeler and its decoder processes
    process.wait()
    reported = {r["frame_id"] for r in read_rows(manifest)}
    assert 10 <= len(reported) < count, "the kill must land mid-run"
    for row in read_rows(manifest):
        assert cv2.imread(str(out / row["outputs"]["label"]), cv2.IMREAD_UNCHANGED) is not None

    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = read_rows(manifest)
    ids = [r["frame_id"] for r in rows]
    assert len(ids) == len(set(ids)) == count  # nothing lost, nothing duplicated
    assert reported <= set(ids)
    assert f"{len(reported)} already done" in " ".join(result.stdout.split())
    for name in ("label", "confidence", "reliability"):
        files = _pngs(out / name)
        assert len(files) == count
        assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED) is not None for f in files)


def test_outputs_of_another_engine_are_stale_and_relabeled(
    tiny_export: TinyExport, tmp_path: Path
) -> None:
    import onnx

    from segloop.fingerprint import file_sha256

    _images(tmp_path / "in", 3)
    out = tmp_path / "out"
    common = ["label", str(tmp_path / "in"), "--out", str(out)]
    assert _segloop(*common, "--export-dir", str(tiny_export.export_dir)).returncode == 0
    # a second engine: the same graph saved with one more model property, and its metadata
    other = tmp_path / "other_export"
    other.mkdir()
    for path in tiny_export.export_dir.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    model = onnx.load(str(other / "labeler.onnx"))
    onnx.helper.set_model_props(model, {"note": "second engine"})
    onnx.save(model, str(other / "labeler.onnx"))
    meta = json.loads((other / "metadata.json").read_text())
    meta["graphs"]["labeler"]["sha256"] = file_sha256(other / "labeler.onnx")
    (other / "metadata.json").write_text(json.dumps(meta))

    result = _segloop(*common, "--export-dir", str(other))
    assert result.returncode == 0, result.stderr
    assert "3 stale relabeled" in " ".join(result.stdout.split())
    rows = read_rows(out / "manifest.jsonl")
    assert len(rows) == 3
    assert {r["engine_hash"] for r in rows} == {meta["graphs"]["labeler"]["sha256"][:16]}


def test_dry_run_lists_and_writes_nothing(tiny_export: TinyExport, tmp_path: Path) -> None:
    _images(tmp_path / "in", 2)
    _video(tmp_path / "in" / "v.mp4", 6)
    out = tmp_path / "out"
    result = _segloop(
        "label", str(tmp_path / "in"), "--export-dir", str(tiny_export.export_dir),
        "--out", str(out), "--every", "2", "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "would label 5 frames from 3 sources" in text and "v/000004.png" in text
    assert not out.exists()


def test_missing_backends_name_the_extra(tiny_export: TinyExport) -> None:
    import onnxruntime as ort

    providers = ort.get_available_providers()
    for backend, provider, extra in (
        ("ort-cuda", "CUDAExecutionProvider", "segloop[gpu]"),
        ("ort-trt", "TensorrtExecutionProvider", "segloop[gpu,trt]"),
    ):
        if provider in providers:
            continue
        with pytest.raises(SegloopError, match=re.escape(extra)):
            open_labeler(tiny_export.export_dir, backend)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(SegloopError, match=re.escape("segloop[trt]")):
            open_labeler(tiny_export.export_dir, "trt")


def test_select_from_a_labeled_pool(tiny_export: TinyExport, tmp_path: Path) -> None:
    """Two frames labeled by hand: frame a all class 0 with reliability 255 except a 2x2
    unreliable block; frame b a decode error (excluded). The unreliable block is ignore (255)
    whatever DARS keeps; DARS itself is tested in test_selection."""
    from segloop.imageio import write_png

    out = tmp_path / "labels"
    key = "a.png"
    label = np.zeros((4, 4), np.uint8)
    reliability = np.full((4, 4), 255, np.uint8)
    reliability[:2, :2] = 10
    for name, values in (("label", label), ("confidence", np.full((4, 4), 200, np.uint8)),
                         ("reliability", reliability)):  # fmt: skip
        write_png(out / name / key, values)
    rows = [
        {"frame_id": "a", "key": key, "status": "ok", "engine_hash": "e"},
        {"frame_id": "b", "key": "b.png", "status": "error", "engine_hash": "e"},
    ]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"--set={o}" for o in tiny_export.params_overrides] + [
        "--set=selection.alpha=1.0", "--set=selection.annotate_next=5",
    ]  # fmt: skip
    result = _segloop("select", "--labels", str(out), *overrides)
    assert result.returncode == 0, result.stderr
    pseudo = cv2.imread(str(out / "pseudo" / key), cv2.IMREAD_UNCHANGED)
    assert (pseudo[:2, :2] == 255).all()
    assert set(np.unique(pseudo)) <= {0, 255} and (pseudo == 0).any()
    assert (out / "annotate_next.txt").read_text() == "a.png\n"
    summary = json.loads((out / "selection.json").read_text())
    assert summary["frames"] == 1
    assert summary["kept_fraction"] == pytest.approx((pseudo == 0).sum() / 16)
