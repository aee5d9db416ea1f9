"""The parity gate: exported graphs against PyTorch on real frames.

Run by every export through the runtime's own ``ort-cpu`` backend (the one every machine
has): ``teacher.onnx`` class scores and ``eln.onnx`` logits against the PyTorch modules on the
same normalised frames, and the fused ``labeler.onnx`` maps against the PyTorch pipeline.
Agreement is the share of pixels with the same argmax label; score and logit differences are
reported as the maximum absolute difference, confidence and reliability in uint8 levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from export.graphs import LabelerGraph
from inference_server.backends.onnxruntime_backend import OrtLabeler, ort_session
from inference_server.metadata import ExportMetadata
from segloop.errors import SegloopError
from training.models import ErrorLocalizationNetwork, SegmentationModel, eln_inputs


@torch.no_grad()
def measure_parity(
    model: SegmentationModel,
    eln: ErrorLocalizationNetwork | None,
    export_dir: Path,
    metadata: ExportMetadata,
    frames: np.ndarray,
    batch_size: int = 4,
) -> dict[str, Any]:
    """Compare every graph with PyTorch on ``frames`` (N x H x W x 3 uint8, graph size)."""
    reference = LabelerGraph(model, eln).eval()
    teacher = ort_session(export_dir / metadata.graphs["teacher"].file, "ort-cpu")
    eln_session = (
        ort_session(export_dir / metadata.graphs["eln"].file, "ort-cpu")
        if eln is not None
        else None
    )
    labeler = OrtLabeler(export_dir, metadata, "ort-cpu", threads=None)
    same_teacher = same_label = pixels = 0
    score_diff = eln_diff = 0.0
    confidence_diff = reliability_diff = 0
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        x = torch.from_numpy(batch)
        image = (x.permute(0, 3, 1, 2).float() - reference.mean) / reference.std
        scores = model(image)
        (got_scores,) = teacher.run(None, {"image": image.numpy()})
        score_diff = max(score_diff, float(np.abs(got_scores - scores.numpy()).max()))
        torch_label = scores.argmax(dim=1).numpy()
        same_teacher += int((got_scores.argmax(axis=1) == torch_label).sum())
        pixels += torch_label.size
        if eln is not None and eln_session is not None:
            inputs = eln_inputs(image, F.softmax(scores, dim=1))
            (got_logit,) = eln_session.run(None, {"inputs": inputs.numpy()})
            eln_diff = max(eln_diff, float(np.abs(got_logit - eln(inputs).numpy()).max()))
        expected = [t.numpy().astype(np.int16) for t in reference(x)]
        maps = labeler.label(batch)
        same_label += int((maps.label == expected[0]).sum())
        confidence_diff = max(confidence_diff, int(np.abs(maps.confidence - expected[1]).max()))
        if maps.reliability is not None:
            reliability_diff = max(
                reliability_diff, int(np.abs(maps.reliability - expected[2]).max())
            )
    report: dict[str, Any] = {
        "frames": len(frames),
        "teacher_argmax_agreement": same_teacher / max(pixels, 1),
        "teacher_max_score_diff": score_diff,
        "labeler_label_agreement": same_label / max(pixels, 1),
        "labeler_confidence_max_diff_levels": confidence_diff,
    }
    if eln is not None:
        report["eln_max_logit_diff"] = eln_diff
        report["labeler_reliability_max_diff_levels"] = reliability_diff
    return report


def enforce_parity(report: dict[str, Any], min_agreement: float) -> None:
    """Fail the export when either graph's argmax agreement is below the gate."""
    for key in ("teacher_argmax_agreement", "labeler_label_agreement"):
        if report[key] < min_agreement:
            raise SegloopError(
                f"parity gate failed: {key} {100 * report[key]:.3f}% < "
                f"{100 * min_agreement:.3f}% over {report['frames']} frames (max score "
                f"difference {report['teacher_max_score_diff']:.2e}); the export was not written"
            )
