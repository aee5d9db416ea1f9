"""ONNX Runtime backends: ``ort-cpu``, ``ort-cuda`` (IO binding) and ``ort-trt`` (ONNX
Runtime's TensorRT execution provider, engines cached beside the export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from inference_server.backends.base import LabelerBackend, LabelMaps, check_frames
from inference_server.metadata import ExportMetadata
from segloop.errors import SegloopError

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}
INSTALL_HINT = {
    "ort-cpu": "pip install segloop",
    "ort-cuda": "pip install 'segloop[gpu]' (onnxruntime-gpu; CUDA and cuDNN libraries)",
    "ort-trt": "pip install 'segloop[gpu,trt]' (onnxruntime-gpu built with TensorRT, and the "
    "TensorRT libraries)",
}


def require_provider(backend: str) -> str:
    """The provider name for ``backend``; a clear error naming the extra when it is missing
    (there is no silent fallback to the CPU)."""
    provider = PROVIDERS[backend]
    available = ort.get_available_providers()
    if provider not in available:
        raise SegloopError(
            f"backend {backend!r} needs ONNX Runtime's {provider}, which this installation lacks "
            f"(available: {', '.join(available)}); install it: {INSTALL_HINT[backend]}"
        )
    return provider


def ort_session(
    path: Path,
    backend: str,
    threads: int | None = None,
    cache_dir: Path | None = None,
    spin: bool = True,
) -> ort.InferenceSession:
    """An inference session on exactly the backend asked for. ``spin=False`` stops the
    intra-op threads busy-waiting for work between operators
    (``session.intra_op.allow_spinning``), which frees those cycles for other threads of
    the process on a machine with few cores."""
    provider = require_provider(backend)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    providers: list[Any] = [provider]
    if backend == "ort-trt":
        cache = str(cache_dir or path.parent / "ort_trt_cache")
        providers = [
            (
                provider,
                {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": cache,
                },
            ),
            "CUDAExecutionProvider",
        ]
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    if provider not in session.get_providers():
        raise SegloopError(f"{path}: ONNX Runtime could not place the graph on {provider}")
    return session


class OrtLabeler(LabelerBackend):
    """The fused ``labeler.onnx`` on one ONNX Runtime execution provider. On ``ort-cuda`` the
    frames are bound as host input and the compact uint8 outputs bound to host memory, so only
    the frames and the small maps cross the bus."""

    def __init__(
        self,
        export_dir: Path,
        metadata: ExportMetadata,
        backend: str,
        threads: int | None,
        spin: bool = True,
    ) -> None:
        super().__init__(metadata)
        self.name = backend
        graph = metadata.graphs["labeler"]
        self.session = ort_session(export_dir / graph.file, backend, threads, spin=spin)
        self.input_name = graph.inputs[0]
        self.output_names = graph.outputs
        self.use_binding = backend != "ort-cpu"

    def label(self, frames: np.ndarray) -> LabelMaps:
        check_frames(frames, self.metadata)
        frames = np.ascontiguousarray(frames)
        if self.use_binding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, frames)
            for name in self.output_names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            outputs = dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))
        else:
            values = self.session.run(self.output_names, {self.input_name: frames})
            outputs = dict(zip(self.output_names, values, strict=True))
        return LabelMaps(outputs["label"], outputs["confidence"], outputs.get("reliability"))
