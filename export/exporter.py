"""``segloop export``: a checkpoint -> an export directory.

The directory is built in a temporary sibling and swapped in only after the parity gate
passes, so a failed or interrupted export never leaves a half-written or unchecked directory
where the labeler would find it.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

import segloop
from export.graphs import MEAN, STD, LabelerGraph, TeacherGraph
from export.onnx_export import EXPORTER, export_onnx
from export.parity import enforce_parity, measure_parity
from inference_server.frames import fit_frame
from inference_server.metadata import ExportMetadata, GraphInfo, write_metadata
from segloop.datasets import read_image
from segloop.errors import SegloopError
from segloop.fingerprint import file_sha256
from segloop.params import Params, export_input_size
from segloop.splits import split_samples
from segloop.taxonomy import IGNORE_INDEX
from training.checkpoint import eln_from_checkpoint, load_checkpoint, model_from_checkpoint

MAP_OUTPUTS = ("label", "confidence", "reliability")


def weights_sha256(*modules: torch.nn.Module | None) -> str:
    """SHA-256 over every tensor of the state dicts, in key order."""
    digest = hashlib.sha256()
    for module in modules:
        if module is None:
            continue
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _graph_info(path: Path, inputs: list[str], outputs: list[str]) -> GraphInfo:
    return GraphInfo(file=path.name, sha256=file_sha256(path), inputs=inputs, outputs=outputs)


def parity_frames(params: Params, metadata: ExportMetadata) -> np.ndarray:
    samples = split_samples(params.data, params.export.parity_split, with_masks=False)
    if not samples:
        raise SegloopError(
            f"the {params.export.parity_split} split has no frames for the parity gate"
        )
    chosen = samples[: params.export.parity_frames]
    return np.stack([fit_frame(read_image(s.image), metadata) for s in chosen])


def export_checkpoint(params: Params, checkpoint: Path) -> ExportMetadata:
    """Write teacher.onnx, eln.onnx (when the checkpoint has an ELN), labeler.onnx and
    metadata.json to ``params.export.out``, gated by parity; returns the metadata."""
    state = load_checkpoint(checkpoint)
    num_classes = len(state["taxonomy"]["classes"])
    if num_classes > IGNORE_INDEX:
        raise SegloopError(f"{num_classes} classes do not fit a uint8 label map")
    cfg = params.export
    height, width = export_input_size(params)
    multiple = int(state["model_params"]["output_stride"])
    if height % multiple or width % multiple:
        raise SegloopError(
            f"export input size {height}x{width} must be a multiple of the output stride {multiple}"
        )
    out = cfg.out
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        metadata = _export_into(staging, params, state, checkpoint, multiple, (height, width))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, out)
    return metadata


def _export_into(
    staging: Path,
    params: Params,
    state: dict[str, Any],
    checkpoint: Path,
    multiple: int,
    size: tuple[int, int],
) -> ExportMetadata:
    """Write every graph and the metadata into ``staging``; raises when parity fails."""
    cfg = params.export
    height, width = size
    model, taxonomy = model_from_checkpoint(state)
    eln = eln_from_checkpoint(state, taxonomy.num_classes)
    model.eval()

    image = torch.zeros(2, 3, height, width)
    export_onnx(
        TeacherGraph(model),
        image,
        staging / "teacher.onnx",
        ("image", (2, 3)),
        {"scores": (2, 3)},
        cfg.opset,
        cfg.dynamic_size,
    )
    graphs = {"teacher": _graph_info(staging / "teacher.onnx", ["image"], ["scores"])}
    if eln is not None:
        inputs = torch.zeros(2, 3 + taxonomy.num_classes + 1, height, width)
        export_onnx(
            eln,
            inputs,
            staging / "eln.onnx",
            ("inputs", (2, 3)),
            {"logit": (2, 3)},
            cfg.opset,
            cfg.dynamic_size,
        )
        graphs["eln"] = _graph_info(staging / "eln.onnx", ["inputs"], ["logit"])
    outputs = MAP_OUTPUTS if eln is not None else MAP_OUTPUTS[:2]
    frames = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    export_onnx(
        LabelerGraph(model, eln),
        frames,
        staging / "labeler.onnx",
        ("frames", (1, 2)),
        dict.fromkeys(outputs, (1, 2)),
        cfg.opset,
        cfg.dynamic_size,
    )
    graphs["labeler"] = _graph_info(staging / "labeler.onnx", ["frames"], list(outputs))

    codebook = getattr(model.head, "codebook", None)
    metadata = ExportMetadata(
        taxonomy=taxonomy.name,
        classes=list(taxonomy.classes),
        palette=[tuple(c) for c in taxonomy.palette],
        mean=MEAN,
        std=STD,
        input_size=(height, width),
        dynamic_size=cfg.dynamic_size,
        size_multiple=multiple,
        head=state["model_params"]["head"],
        ecoc_codebook=None if codebook is None else codebook.to(torch.int64).tolist(),
        has_eln=eln is not None,
        opset=cfg.opset,
        exporter=EXPORTER,
        weights_sha256=weights_sha256(model, eln),
        graphs=graphs,
        parity={},
        versions={
            "segloop": segloop.__version__,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        params={"model": state["model_params"], "export": cfg.model_dump(mode="json")},
        checkpoint=str(checkpoint),
    )
    report = measure_parity(model, eln, staging, metadata, parity_frames(params, metadata))
    enforce_parity(report, cfg.parity_min_agreement)
    metadata = metadata.model_copy(update={"parity": report})
    write_metadata(staging, metadata)
    return metadata


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` (the old export is removed only once the new one is in)."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
