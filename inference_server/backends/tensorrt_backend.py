"""``trt``: the labeler as a native TensorRT engine (TensorRT 10/11 name-based tensor API).

Written to the documented API and not run on the development machine (TensorRT cannot be
installed there; its tests skip with that reason). Per batch: frames are copied into a pinned
host buffer, uploaded on one CUDA stream, ``execute_async_v3`` runs, the three uint8 maps are
copied back into pinned buffers, and the stream is synchronised. With ``cuda_graphs`` the
enqueue for each batch shape is captured once into a CUDA graph and replayed after that.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from inference_server.backends.base import LabelerBackend, LabelMaps, check_frames
from inference_server.metadata import ExportMetadata
from inference_server.tensorrt_runtime import (
    check_identity,
    cuda_check,
    current_identity,
    import_cudart,
    import_tensorrt,
    read_engine_sidecar,
)

ENGINE_FILE = "labeler.plan"


class PinnedBuffer:
    """Page-locked host memory viewed as a numpy array, paired with a device allocation."""

    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.cudart = cudart
        self.nbytes = int(np.prod(shape)) * dtype.itemsize
        self.host_ptr = cuda_check(cudart.cudaMallocHost(self.nbytes))
        raw = ctypes.cast(self.host_ptr, ctypes.POINTER(ctypes.c_uint8))
        self.host = np.ctypeslib.as_array(raw, (self.nbytes,)).view(dtype).reshape(shape)
        self.device = cuda_check(cudart.cudaMalloc(self.nbytes))

    def free(self) -> None:
        cuda_check(self.cudart.cudaFree(self.device))
        cuda_check(self.cudart.cudaFreeHost(self.host_ptr))


class TensorRTLabeler(LabelerBackend):
    name = "trt"

    def __init__(
        self, export_dir: Path, metadata: ExportMetadata, cuda_graphs: bool = False
    ) -> None:
        super().__init__(metadata)
        trt = import_tensorrt()
        self.cudart = import_cudart()
        engine_path = export_dir / ENGINE_FILE
        sidecar = read_engine_sidecar(engine_path)
        check_identity(engine_path, sidecar["identity"], current_identity())
        self.profile = sidecar["profile"]
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{engine_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.stream = cuda_check(self.cudart.cudaStreamCreate())
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.buffers: dict[str, PinnedBuffer] = {}
        batch, height, width = self.profile["max_batch"], *metadata.input_size
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = (batch, height, width, 3) if is_input else (batch, height, width)
            (self.inputs if is_input else self.outputs).append(name)
            self.buffers[name] = PinnedBuffer(self.cudart, shape, dtype)
            self.context.set_tensor_address(name, int(self.buffers[name].device))
        self.cuda_graphs = cuda_graphs
        self.graphs: dict[int, Any] = {}

    def _enqueue(self, batch: int) -> None:
        h2d = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            buf = self.buffers[name]
            size = buf.nbytes // self.profile["max_batch"] * batch
            cuda_check(
                self.cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, size, h2d, self.stream)
            )
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name in self.outputs:
            buf = self.buffers[name]
            size = buf.nbytes // self.profile["max_batch"] * batch
            cuda_check(
                self.cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, size, d2h, self.stream)
            )

    def _run(self, batch: int) -> None:
        if not self.cuda_graphs:
            self._enqueue(batch)
        elif batch in self.graphs:
            cuda_check(self.cudart.cudaGraphLaunch(self.graphs[batch], self.stream))
        else:
            # One plain run first lets TensorRT finish any deferred setup for this shape.
            self._enqueue(batch)
            cuda_check(self.cudart.cudaStreamSynchronize(self.stream))
            mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            cuda_check(self.cudart.cudaStreamBeginCapture(self.stream, mode))
            self._enqueue(batch)
            graph = cuda_check(self.cudart.cudaStreamEndCapture(self.stream))
            self.graphs[batch] = cuda_check(self.cudart.cudaGraphInstantiate(graph, 0))
            cuda_check(self.cudart.cudaGraphDestroy(graph))  # the executable graph stays
            cuda_check(self.cudart.cudaGraphLaunch(self.graphs[batch], self.stream))
        cuda_check(self.cudart.cudaStreamSynchronize(self.stream))

    def label(self, frames: np.ndarray) -> LabelMaps:
        check_frames(frames, self.metadata)
        batch = frames.shape[0]
        if not self.profile["min_batch"] <= batch <= self.profile["max_batch"]:
            raise ValueError(
                f"batch {batch} is outside the engine's profile "
                f"[{self.profile['min_batch']}, {self.profile['max_batch']}]"
            )
        for name in self.inputs:
            self.context.set_input_shape(name, frames.shape)
            self.buffers[name].host[:batch] = frames
        self._run(batch)
        out = {name: self.buffers[name].host[:batch].copy() for name in self.outputs}
        return LabelMaps(out["label"], out["confidence"], out.get("reliability"))

    def close(self) -> None:
        for graph in self.graphs.values():
            cuda_check(self.cudart.cudaGraphExecDestroy(graph))
        self.graphs.clear()
        for buf in self.buffers.values():
            buf.free()
        self.buffers.clear()
        cuda_check(self.cudart.cudaStreamDestroy(self.stream))
