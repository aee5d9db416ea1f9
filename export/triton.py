"""A Triton Inference Server model repository for the labeler (``segloop export --triton``).

Writes ``<repo>/segloop_labeler/config.pbtxt`` and ``1/model.onnx`` (platform
``onnxruntime_onnx``) and, where the export has a TensorRT engine, ``segloop_labeler_trt``
with ``1/model.plan`` (platform ``tensorrt_plan``). Input and output names, types and shapes
come from the ONNX graph itself (the batch axis becomes ``max_batch_size``; a dynamic axis is
``-1``); dynamic batching and the instance group come from params.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from inference_server.metadata import ExportMetadata
from segloop.atomic_files import write_bytes_atomic, write_text_atomic

MODEL_NAME = "segloop_labeler"
TRITON_TYPES: dict[int, str] = {
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.FLOAT: "TYPE_FP32",
}


def _tensor_entries(values: list[onnx.ValueInfoProto]) -> list[str]:
    entries = []
    for value in values:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else -1 for d in tensor.shape.dim][1:]
        entries.append(
            "  {\n"
            f'    name: "{value.name}"\n'
            f"    data_type: {TRITON_TYPES[tensor.elem_type]}\n"
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n"
            "  }"
        )
    return entries


def triton_config(
    graph: onnx.ModelProto,
    name: str,
    platform: str,
    max_batch_size: int,
    preferred_batch: int,
    max_queue_delay_us: int,
    instance_kind: str,
) -> str:
    """``config.pbtxt`` text for one model."""
    inputs = ",\n".join(_tensor_entries(list(graph.graph.input)))
    outputs = ",\n".join(_tensor_entries(list(graph.graph.output)))
    return (
        f'name: "{name}"\n'
        f'platform: "{platform}"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred_batch} ]\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
        f"instance_group [ {{ count: 1 kind: {instance_kind} }} ]\n"
    )


def write_triton_repository(
    export_dir: Path,
    metadata: ExportMetadata,
    repository: Path,
    max_batch_size: int,
    preferred_batch: int,
    max_queue_delay_us: int,
    instance_kind: str = "KIND_GPU",
) -> list[Path]:
    """The model folders written (the ONNX model, and the TensorRT one when an engine
    exists)."""
    source = export_dir / metadata.graphs["labeler"].file
    graph = onnx.load(str(source))
    written = []
    folder = repository / MODEL_NAME
    write_bytes_atomic(folder / "1" / "model.onnx", source.read_bytes())
    write_text_atomic(
        folder / "config.pbtxt",
        triton_config(
            graph,
            MODEL_NAME,
            "onnxruntime_onnx",
            max_batch_size,
            preferred_batch,
            max_queue_delay_us,
            instance_kind,
        ),
    )
    written.append(folder)
    plan = export_dir / "labeler.plan"
    if plan.exists():
        folder = repository / f"{MODEL_NAME}_trt"
        write_bytes_atomic(folder / "1" / "model.plan", plan.read_bytes())
        write_text_atomic(
            folder / "config.pbtxt",
            triton_config(
                graph,
                f"{MODEL_NAME}_trt",
                "tensorrt_plan",
                max_batch_size,
                preferred_batch,
                max_queue_delay_us,
                "KIND_GPU",
            ),
        )
        written.append(folder)
    return written
