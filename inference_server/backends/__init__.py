"""Labeling backends behind one interface, chosen by name."""

from __future__ import annotations

from pathlib import Path

from inference_server.backends.base import LabelerBackend, LabelMaps
from inference_server.metadata import ExportMetadata, read_metadata

BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt")


def open_labeler(
    export_dir: Path,
    backend: str,
    threads: int | None = None,
    cuda_graphs: bool = False,
    metadata: ExportMetadata | None = None,
    spin: bool = True,
) -> LabelerBackend:
    """The export's labeler on ``backend``; a missing library is a clear error naming the
    extra to install, never a silent fallback to the CPU. ``spin`` is ONNX Runtime's
    intra-op busy-waiting (:func:`ort_session`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    metadata = metadata or read_metadata(export_dir)
    if backend == "trt":
        from inference_server.backends.tensorrt_backend import TensorRTLabeler

        return TensorRTLabeler(export_dir, metadata, cuda_graphs)
    from inference_server.backends.onnxruntime_backend import OrtLabeler

    return OrtLabeler(export_dir, metadata, backend, threads, spin)


__all__ = ["BACKENDS", "LabelMaps", "LabelerBackend", "open_labeler"]
