"""Inference streams of ``segloop label``: how threads are split, that every stream labels,
that two streams write what one does, and that a failing stream stops the run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from inference_server import streams as streams_module
from inference_server.backends import LabelerBackend, LabelMaps, open_labeler
from inference_server.backends.onnxruntime_backend import OrtLabeler
from inference_server.labeler import LabelRun, LabelSettings, plan_frames
from inference_server.manifest import Manifest
from inference_server.metadata import read_metadata
from inference_server.sources import expand_inputs
from inference_server.streams import default_streams, open_streams, threads_per_stream
from segloop.label_manifest import read_rows
from tests.conftest import TinyExport, write_rgb


@pytest.mark.parametrize(
    ("backend", "threads", "streams", "expected"),
    [
        ("ort-cpu", 4, 2, 2),
        ("ort-cpu", 3, 2, 1),  # an odd thread is left over, not shared
        ("ort-cpu", 1, 2, 1),  # at least one each
        ("ort-cpu", 8, 1, 8),
        ("ort-cpu", None, 1, None),  # one stream keeps ONNX Runtime's default
        ("ort-cuda", 4, 2, 4),  # GPU backends take threads as given
        ("trt", None, 1, None),
    ],
)
def test_threads_per_stream(
    backend: str, threads: int | None, streams: int, expected: int | None
) -> None:
    assert threads_per_stream(backend, threads, streams) == expected


def test_unset_threads_split_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams_module, "available_cpus", lambda: 6)
    assert threads_per_stream("ort-cpu", None, 2) == 3
    assert threads_per_stream("ort-cpu", None, 4) == 1


def test_two_streams_on_cpu_one_elsewhere() -> None:
    assert default_streams("ort-cpu") == 2
    assert [default_streams(b) for b in ("ort-cuda", "ort-trt", "trt")] == [1, 1, 1]


def test_open_streams_gives_each_stream_its_own_session(tiny_export: TinyExport) -> None:
    metadata = read_metadata(tiny_export.export_dir)
    with open_streams(tiny_export.export_dir, "ort-cpu", 2, None, metadata) as labelers:
        assert len(labelers) == 2
        assert all(isinstance(labeler, OrtLabeler) for labeler in labelers)
        sessions = [labeler.session for labeler in labelers if isinstance(labeler, OrtLabeler)]
        assert sessions[0] is not sessions[1]
        assert [s.get_session_options().intra_op_num_threads for s in sessions] == [1, 1]


class SlowBackend(LabelerBackend):
    """Delegates to a real labeler after a pause, and records the threads that called it."""

    def __init__(self, inner: LabelerBackend, pause_s: float = 0.02) -> None:
        super().__init__(inner.metadata)
        self.name = "slow"
        self.inner = inner
        self.pause_s = pause_s
        self.calls = 0
        self.threads: set[str] = set()

    def label(self, frames: np.ndarray) -> LabelMaps:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.pause_s)
        return self.inner.label(frames)


class FailingBackend(LabelerBackend):
    name = "failing"

    def label(self, frames: np.ndarray) -> LabelMaps:
        raise RuntimeError("the engine failed")


def _pool(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(3)
    for i in range(count):
        write_rgb(folder / f"f{i:03d}.png", rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    return folder


def _run(export_dir: Path, folder: Path, out: Path, backends: list[LabelerBackend]) -> None:
    metadata = read_metadata(export_dir)
    settings = LabelSettings(out=out, batch_size=2, decode_workers=1, write_workers=2)
    manifest = Manifest(out, metadata.engine_hash).open()
    try:
        plan = plan_frames(expand_inputs([str(folder)]), manifest, settings)
        LabelRun(backends, metadata, manifest, settings).run(plan)
    finally:
        manifest.close()


def _maps(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for name in ("label", "confidence", "reliability")
        for p in sorted((out / name).glob("*.png"))
    }


def test_two_streams_share_the_batches_and_write_what_one_stream_writes(
    tiny_export: TinyExport, tmp_path: Path
) -> None:
    folder = _pool(tmp_path / "in", 24)
    with open_labeler(tiny_export.export_dir, "ort-cpu", 1) as first:
        with open_labeler(tiny_export.export_dir, "ort-cpu", 1) as second:
            slow = [SlowBackend(first), SlowBackend(second)]
            _run(tiny_export.export_dir, folder, tmp_path / "two", list(slow))
        _run(tiny_export.export_dir, folder, tmp_path / "one", [first])
    # 12 batches of 2; while one stream pauses in a batch the other takes the next
    assert sum(s.calls for s in slow) == 12
    assert all(s.calls > 0 for s in slow)
    assert {name for s in slow for name in s.threads} == {
        "segloop-inference-0",
        "segloop-inference-1",
    }
    two, one = _maps(tmp_path / "two"), _maps(tmp_path / "one")
    assert len(two) == 3 * 24 and two == one
    rows = read_rows(tmp_path / "two" / "manifest.jsonl")
    assert sorted(r["frame_id"] for r in rows) == sorted(
        r["frame_id"] for r in read_rows(tmp_path / "one" / "manifest.jsonl")
    )
    assert len({r["frame_id"] for r in rows}) == len(rows) == 24


def test_a_failing_stream_stops_the_run_with_its_error(
    tiny_export: TinyExport, tmp_path: Path
) -> None:
    folder = _pool(tmp_path / "in", 40)
    metadata = read_metadata(tiny_export.export_dir)
    with open_labeler(tiny_export.export_dir, "ort-cpu", 1) as healthy:
        backends = [SlowBackend(healthy), FailingBackend(metadata)]
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="the engine failed"):
            _run(tiny_export.export_dir, folder, tmp_path / "out", backends)
    assert time.monotonic() - start < 60  # the healthy stream stops too; nothing hangs
    rows = read_rows(tmp_path / "out" / "manifest.jsonl")
    assert len(rows) < 40 and all(r["status"] == "ok" for r in rows)


def test_a_run_needs_a_backend(tiny_export: TinyExport, tmp_path: Path) -> None:
    metadata = read_metadata(tiny_export.export_dir)
    manifest = Manifest(tmp_path, metadata.engine_hash)
    with pytest.raises(ValueError, match="at least one backend"):
        LabelRun([], metadata, manifest, LabelSettings(out=tmp_path))
