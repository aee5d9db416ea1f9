"""Export: the three graphs, their metadata, the parity gate, precision rewrites, and the
TensorRT engine identity rules."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.parity import enforce_parity
from export.precision import to_fp16, to_int8_qdq
from inference_server.backends import open_labeler
from inference_server.metadata import read_metadata
from inference_server.tensorrt_runtime import (
    EngineIdentity,
    ShapeProfile,
    check_identity,
    engine_key,
    read_engine_sidecar,
)
from segloop.errors import SegloopError
from tests.conftest import TinyExport, make_tiny_export


def _frames(count: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *size, 3), dtype=np.uint8)


def test_export_writes_three_self_contained_graphs_with_metadata(tiny_export: TinyExport) -> None:
    meta = read_metadata(tiny_export.export_dir)
    assert set(meta.graphs) == {"teacher", "eln", "labeler"}
    assert meta.input_size == (32, 64) and meta.num_classes == 19 and meta.has_eln
    assert meta.opset == 17 and "dynamo=False" in meta.exporter
    assert meta.graphs["labeler"].outputs == ["label", "confidence", "reliability"]
    for graph in meta.graphs.values():
        model = onnx.load(str(tiny_export.export_dir / graph.file))
        assert model.opset_import[0].version == 17
        # weights inside the file: no external data
        assert all(not t.external_data for t in model.graph.initializer)
    assert not list(tiny_export.export_dir.glob("*.data"))
    # the graph's I/O types: uint8 frames in, uint8 maps out, dynamic batch
    labeler = ort.InferenceSession(str(tiny_export.export_dir / "labeler.onnx"))
    (frames,) = labeler.get_inputs()
    assert frames.type == "tensor(uint8)" and frames.shape[1:] == [32, 64, 3]
    assert isinstance(frames.shape[0], str)
    assert {o.type for o in labeler.get_outputs()} == {"tensor(uint8)"}
    assert meta.parity["labeler_label_agreement"] >= 0.999


def test_metadata_round_trip_and_tamper_detection(tiny_export: TinyExport, tmp_path: Path) -> None:
    meta = read_metadata(tiny_export.export_dir)
    raw = json.loads((tiny_export.export_dir / "metadata.json").read_text())
    assert meta.model_dump(mode="json") == raw
    assert raw["palette"][0] == [128, 64, 128]  # road in the Cityscapes palette
    assert raw["versions"]["torch"] == torch.__version__
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in tiny_export.export_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with (copy / "eln.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(SegloopError, match="hash differs"):
        read_metadata(copy)
    with pytest.raises(SegloopError, match="not an export directory"):
        read_metadata(tmp_path)
    older = copy / "metadata.json"
    older.write_text(json.dumps({**raw, "format_version": 1}))
    with pytest.raises(SegloopError, match="export format 1, this segloop reads format 2"):
        read_metadata(copy, verify=False)


@pytest.mark.parametrize(
    "extra",
    [
        ["model.head=ecoc", "model.ecoc.bits=24", "model.ecoc.min_distance=4"],
        ["model.head=prototype", "methods.des4.enabled=true"],
        ["export.dynamic_size=true"],
    ],
    ids=["ecoc", "prototype", "dynamic-size"],
)
def test_every_configuration_passes_the_parity_gate(
    extra: list[str], tiny_export: TinyExport, tmp_path: Path
) -> None:
    for name in ("data", "splits"):
        (tmp_path / name).symlink_to(tiny_export.root / name)
    exported = make_tiny_export(tmp_path, extra)
    meta = read_metadata(exported.export_dir)
    assert meta.parity["teacher_argmax_agreement"] >= 0.999
    assert meta.parity["labeler_label_agreement"] >= 0.999
    assert meta.parity["teacher_max_score_diff"] < 1e-3
    if meta.head == "ecoc":
        codebook = np.array(meta.ecoc_codebook)
        assert codebook.shape == (19, 24) and set(np.unique(codebook)) <= {0, 1}
        # the ECOC confidence map is the level of 1 - d_SH of the winning codeword,
        # max score / K
        frames = _frames(2, (32, 64), seed=3)
        scores = _teacher_scores(exported.export_dir, frames)
        with open_labeler(exported.export_dir, "ort-cpu") as labeler:
            maps = labeler.label(frames)
        complement = np.maximum(1 - scores.max(axis=1).astype(np.float64) / 24, 1e-6)
        expected = np.round(255 * np.log(complement) / np.log(1e-6))
        assert np.abs(maps.confidence.astype(int) - expected).max() <= 1
    if meta.dynamic_size:
        # a frame size the export never saw
        with open_labeler(exported.export_dir, "ort-cpu") as labeler:
            maps = labeler.label(_frames(3, (48, 96)))
        assert maps.label.shape == (3, 48, 96)


def test_a_checkpoint_without_eln_exports_two_maps(tiny_export: TinyExport, tmp_path: Path) -> None:
    for name in ("data", "splits"):
        (tmp_path / name).symlink_to(tiny_export.root / name)
    exported = make_tiny_export(tmp_path, with_eln=False)
    meta = read_metadata(exported.export_dir)
    assert set(meta.graphs) == {"teacher", "labeler"} and not meta.has_eln
    with open_labeler(exported.export_dir, "ort-cpu") as labeler:
        maps = labeler.label(_frames(2, (32, 64)))
    assert maps.reliability is None and maps.label.dtype == np.uint8


def _teacher_scores(export_dir: Path, frames: np.ndarray) -> np.ndarray:
    """teacher.onnx's class scores of uint8 frames, normalised as metadata.json says."""
    meta = read_metadata(export_dir)
    teacher = ort.InferenceSession(str(export_dir / "teacher.onnx"))
    image = (frames.astype(np.float32) / 255.0 - np.array(meta.mean)) / np.array(meta.std)
    (scores,) = teacher.run(None, {"image": image.transpose(0, 3, 1, 2).astype(np.float32)})
    return np.asarray(scores)


def test_labeler_maps_follow_their_definition(tiny_export: TinyExport) -> None:
    """label = argmax softmax(teacher), confidence = the level of max P
    (``round(255 ln(max(1 - max P, 1e-6)) / ln 1e-6)``), computed here with numpy from
    teacher.onnx's scores."""
    frames = _frames(2, (32, 64), seed=3)
    scores = _teacher_scores(tiny_export.export_dir, frames)
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    with open_labeler(tiny_export.export_dir, "ort-cpu") as labeler:
        maps = labeler.label(frames)
    assert (maps.label == probs.argmax(axis=1)).mean() >= 0.999
    complement = np.maximum(1 - probs.max(axis=1).astype(np.float64), 1e-6)
    expected_conf = np.round(255 * np.log(complement) / np.log(1e-6))
    assert np.abs(maps.confidence.astype(int) - expected_conf).max() <= 1


def test_the_parity_gate_fails_below_the_threshold() -> None:
    report = {
        "frames": 4,
        "teacher_argmax_agreement": 0.998,
        "labeler_label_agreement": 1.0,
        "teacher_max_score_diff": 0.5,
    }
    with pytest.raises(SegloopError, match="parity gate failed: teacher_argmax_agreement"):
        enforce_parity(report, 0.999)
    enforce_parity(report, 0.99)


def test_wrong_frames_are_refused_with_the_reason(tiny_export: TinyExport) -> None:
    with open_labeler(tiny_export.export_dir, "ort-cpu") as labeler:
        with pytest.raises(ValueError, match="differs from the graph input"):
            labeler.label(_frames(1, (64, 64)))
        with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
            labeler.label(np.zeros((1, 32, 64, 3), np.float32))


def test_fp16_and_int8_graphs_run_and_agree(tiny_export: TinyExport, tmp_path: Path) -> None:
    source = tiny_export.export_dir / "labeler.onnx"
    frames = _frames(4, (32, 64), seed=5)
    reference = ort.InferenceSession(str(source)).run(None, {"frames": frames})
    fp16 = to_fp16(source, tmp_path / "fp16.onnx")
    types = {init.data_type for init in onnx.load(str(fp16)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    got = ort.InferenceSession(str(fp16)).run(None, {"frames": frames})
    assert (got[0] == reference[0]).mean() > 0.95
    int8 = to_int8_qdq(source, tmp_path / "int8.onnx", "frames", frames)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    got = ort.InferenceSession(str(int8)).run(None, {"frames": frames})
    assert got[0].shape == reference[0].shape and got[0].dtype == np.uint8


def test_engine_key_changes_with_every_input() -> None:
    identity = EngineIdentity("10.8.0", "NVIDIA H100", "9.0")
    profile = ShapeProfile(1, 8, 16, 128, 256)
    base = engine_key("abc", "fp16", profile, identity)
    assert base == engine_key("abc", "fp16", profile, identity)
    others = [
        engine_key("abd", "fp16", profile, identity),
        engine_key("abc", "int8", profile, identity),
        engine_key("abc", "fp16", replace(profile, max_batch=32), identity),
        engine_key("abc", "fp16", profile, replace(identity, tensorrt_version="11.0.0")),
        engine_key("abc", "fp16", profile, replace(identity, gpu_name="NVIDIA L4")),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_an_engine_built_elsewhere_is_refused(tmp_path: Path) -> None:
    here = EngineIdentity("10.8.0", "NVIDIA H100", "9.0")
    built = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}
    with pytest.raises(SegloopError, match=r"tensorrt_version '10.3.0' \(built\)"):
        check_identity(tmp_path / "labeler.plan", built, here)
    check_identity(tmp_path / "labeler.plan", {**built, "tensorrt_version": "10.8.0"}, here)


def test_installing_an_engine_never_pairs_it_with_an_old_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.tensorrt_build as tensorrt_build

    cache, export_dir = tmp_path / "cache", tmp_path / "export"
    cache.mkdir()
    export_dir.mkdir()
    (cache / "key.plan").write_bytes(b"new engine")
    (cache / "key.plan.json").write_text('{"profile": "new"}')
    (export_dir / "labeler.plan").write_bytes(b"old engine")
    (export_dir / "labeler.plan.json").write_text('{"profile": "old"}')

    written = tensorrt_build.write_bytes_atomic

    def crash_before_the_sidecar(path: Path, data: bytes) -> None:
        if path.name.endswith(".json"):
            raise OSError("killed")
        written(path, data)

    monkeypatch.setattr(tensorrt_build, "write_bytes_atomic", crash_before_the_sidecar)
    with pytest.raises(OSError, match="killed"):
        tensorrt_build.install_engine(cache / "key.plan", export_dir)
    assert (export_dir / "labeler.plan").read_bytes() == b"new engine"
    with pytest.raises(SegloopError, match="no TensorRT engine"):
        read_engine_sidecar(export_dir / "labeler.plan")

    monkeypatch.setattr(tensorrt_build, "write_bytes_atomic", written)
    target = tensorrt_build.install_engine(cache / "key.plan", export_dir)
    assert target.read_bytes() == b"new engine"
    assert read_engine_sidecar(target) == {"profile": "new"}
    assert sorted(p.name for p in export_dir.iterdir()) == ["labeler.plan", "labeler.plan.json"]


def test_a_failed_parity_gate_keeps_the_previous_export(
    tiny_export: TinyExport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.exporter as exporter

    for name in ("data", "splits"):
        (tmp_path / name).symlink_to(tiny_export.root / name)
    exported = make_tiny_export(tmp_path)
    before = (exported.export_dir / "metadata.json").read_text()

    def failing_parity(*args: object, **kwargs: object) -> dict[str, float]:
        return {
            "frames": 2,
            "teacher_argmax_agreement": 0.9,
            "labeler_label_agreement": 0.9,
            "teacher_max_score_diff": 3.0,
        }

    monkeypatch.setattr(exporter, "measure_parity", failing_parity)
    with pytest.raises(SegloopError, match="parity gate failed"):
        exporter.export_checkpoint(exported.params, exported.checkpoint)
    assert (exported.export_dir / "metadata.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_triton_config_matches_the_graph(tiny_export: TinyExport, tmp_path: Path) -> None:
    import re

    from export.triton import write_triton_repository

    meta = read_metadata(tiny_export.export_dir)
    (folder,) = write_triton_repository(tiny_export.export_dir, meta, tmp_path, 16, 8, 5000)
    config = (folder / "config.pbtxt").read_text()
    assert (folder / "1" / "model.onnx").read_bytes() == (
        tiny_export.export_dir / "labeler.onnx"
    ).read_bytes()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 16" in config
    assert "max_queue_delay_microseconds: 5000" in config
    entries = re.findall(r'name: "(\w+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]*) \]', config)
    session = ort.InferenceSession(str(tiny_export.export_dir / "labeler.onnx"))
    types = {"tensor(uint8)": "TYPE_UINT8", "tensor(float)": "TYPE_FP32"}
    # Triton writes a dynamic (symbolic) axis as -1
    expected = [
        (
            t.name,
            types[t.type],
            ", ".join(str(d) if isinstance(d, int) else "-1" for d in t.shape[1:]),
        )
        for t in [*session.get_inputs(), *session.get_outputs()]
    ]
    assert entries == expected
    assert entries[0] == ("frames", "TYPE_UINT8", "32, 64, 3")
