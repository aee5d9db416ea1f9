"""Precision goes into the ONNX graph, not into builder flags (TensorRT 11 removed the
precision flags and the INT8 calibrators; engines are built strongly typed from the types the
graph states).

- FP16: ``onnxconverter_common.float16`` converts weights and compute to float16, keeping the
  graph's uint8 inputs/outputs (``keep_io_types``).
- INT8: ONNX Runtime's static quantiser inserts QuantizeLinear/DequantizeLinear pairs in QDQ
  format with symmetric int8 weights and activations (the form TensorRT consumes), with
  activation ranges calibrated on frames from the unlabeled pool.

Both rewritten graphs run on ONNX Runtime too, which is how they are checked where TensorRT
is absent.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxconverter_common import float16
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)


def to_fp16(source: Path, target: Path) -> Path:
    """Weights and compute in float16. The converter retypes tensors but leaves the ``to``
    attribute of the graph's own Cast nodes (uint8 frames -> float) at float32, which makes
    an invalid graph; those Casts are retargeted to float16 here (the labeler's inputs and
    outputs are uint8, so no float32 tensor has to survive). The casts the converter inserts
    around ops it keeps in float32 (its default block list) are left as they are."""
    original = onnx.load(str(source))
    own_casts = {node.name for node in original.graph.node if node.op_type == "Cast"}
    with warnings.catch_warnings():
        # constants such as the entropy's log clamp (1e-8) round to float16's smallest value
        warnings.filterwarnings("ignore", message="the float32 number")
        model = float16.convert_float_to_float16(original, keep_io_types=True)
    for node in model.graph.node:
        if node.op_type != "Cast" or node.name not in own_casts:
            continue
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                attribute.i = onnx.TensorProto.FLOAT16
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


class FrameReader(CalibrationDataReader):
    """Feeds calibration frames to the quantiser one batch at a time."""

    def __init__(self, input_name: str, frames: np.ndarray, batch_size: int = 4) -> None:
        self.batches: Iterator[np.ndarray] = iter(
            [frames[i : i + batch_size] for i in range(0, len(frames), batch_size)]
        )
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def to_int8_qdq(source: Path, target: Path, input_name: str, frames: np.ndarray) -> Path:
    """Symmetric int8 Q/DQ graph calibrated (min/max) on ``frames`` (N x H x W x 3 uint8)."""
    quantize_static(
        str(source),
        str(target),
        FrameReader(input_name, frames),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return target
