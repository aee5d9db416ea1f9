"""Writing one module to ONNX, deliberately with the TorchScript-based exporter.

Choice: ``torch.onnx.export(..., dynamo=False)`` at opset 17 (``export.opset``). The dynamo
exporter (torch's default since 2.9) needs ``onnxscript``, which segloop does not depend on,
and writes weights as external data unless asked not to; the TorchScript exporter is
deprecated but present in the torch versions segloop supports, exports these convolutional
graphs in seconds into one self-contained file, and keeps the input/output names we give.
Every export runs the parity gate (``export.parity``), so an exporter regression cannot ship
silently. Opset 17 is the newest that TensorRT 10's ONNX parser and ONNX Runtime >= 1.17 both
support fully for these ops.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

EXPORTER = "torch.onnx.export(dynamo=False)"


def export_onnx(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    input_axes: tuple[str, tuple[int, int]],
    output_axes: dict[str, tuple[int, int]],
    opset: int,
    dynamic_size: bool,
) -> None:
    """Export ``module`` with a dynamic batch axis (axis 0), and dynamic height and width
    (each tensor's ``(h_axis, w_axis)``) when ``dynamic_size``; then ``onnx.checker``. The file
    holds its weights (no external data)."""

    def axes(hw: tuple[int, int]) -> dict[int, str]:
        return {0: "batch", **({hw[0]: "height", hw[1]: "width"} if dynamic_size else {})}

    input_name, input_hw = input_axes
    dynamic_axes = {input_name: axes(input_hw), **{n: axes(hw) for n, hw in output_axes.items()}}
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(output_axes),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
