"""TensorRT paths: run only where the tensorrt package and a GPU exist (never faked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TinyExport

trt = pytest.importorskip(
    "tensorrt", reason="TensorRT is not installed on this machine (pip install 'segloop[trt]')"
)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_engine_labels_like_onnx_runtime(
    precision: str, tiny_export: TinyExport, tmp_path: Path
) -> None:
    from export.engine import build_labeler_engine
    from inference_server.backends import open_labeler
    from inference_server.metadata import read_metadata

    params = tiny_export.params.model_copy(deep=True)
    params.export.tensorrt.precision = precision  # type: ignore[assignment]
    params.export.tensorrt.cache_dir = tmp_path / "cache"
    meta = read_metadata(tiny_export.export_dir)
    plan, built = build_labeler_engine(params, meta)
    assert built and plan.exists()
    _, built_again = build_labeler_engine(params, meta)
    assert not built_again  # from the cache
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)
    with open_labeler(tiny_export.export_dir, "ort-cpu") as cpu:
        expected = cpu.label(frames)
    for graphs in (False, True):
        with open_labeler(tiny_export.export_dir, "trt", cuda_graphs=graphs) as engine:
            got = engine.label(frames)
            got_again = engine.label(frames)
        assert (got.label == expected.label).mean() >= (0.999 if precision == "fp32" else 0.99)
        assert np.array_equal(got.label, got_again.label)
