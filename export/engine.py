"""The labeler's TensorRT engine for an export directory: precision into the ONNX, build (or
take from the cache), install as ``<export>/labeler.plan`` with its identity sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.precision import to_fp16, to_int8_qdq
from export.tensorrt_build import build_engine, install_engine
from inference_server.frames import fit_frame
from inference_server.metadata import ExportMetadata
from inference_server.tensorrt_runtime import ShapeProfile
from segloop.datasets import read_image
from segloop.params import Params
from segloop.splits import split_samples


def calibration_frames(params: Params, metadata: ExportMetadata) -> np.ndarray:
    """The first ``calibration_frames`` frames of the unlabeled pool, fitted to the graph."""
    pool = split_samples(params.data, "unlabeled", with_masks=False)
    chosen = pool[: params.export.tensorrt.calibration_frames]
    return np.stack([fit_frame(read_image(s.image), metadata) for s in chosen])


def precision_graph(params: Params, metadata: ExportMetadata) -> Path:
    """labeler.onnx rewritten to the requested precision (fp32: the graph itself)."""
    export_dir = params.export.out
    source = export_dir / metadata.graphs["labeler"].file
    precision = params.export.tensorrt.precision
    if precision == "fp16":
        return to_fp16(source, export_dir / "labeler.fp16.onnx")
    if precision == "int8":
        frames = calibration_frames(params, metadata)
        return to_int8_qdq(source, export_dir / "labeler.int8.onnx", "frames", frames)
    return source


def build_labeler_engine(params: Params, metadata: ExportMetadata) -> tuple[Path, bool]:
    trt = params.export.tensorrt
    height, width = metadata.input_size
    profile = ShapeProfile(trt.min_batch, trt.opt_batch, trt.max_batch, height, width)
    graph = precision_graph(params, metadata)
    engine, built = build_engine(
        graph, "frames", trt.precision, profile, trt.workspace_gib, trt.cache_dir
    )
    return install_engine(engine, params.export.out), built
