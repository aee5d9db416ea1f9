"""Atomic checkpoints: everything needed to resume a run bit-for-bit, and to rebuild the
model without the params file that trained it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segloop.atomic_files import temporary_sibling
from segloop.errors import SegloopError
from segloop.params import ModelParams
from segloop.taxonomy import Taxonomy
from training.models import ErrorLocalizationNetwork, SegmentationModel, build_eln, build_model


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file and rename, so a crash never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SegloopError(f"{path}: checkpoint not found")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise SegloopError(f"{path}: not a readable segloop checkpoint ({exc})") from None
    if "model" not in state or "model_params" not in state:
        raise SegloopError(f"{path}: not a segloop checkpoint (no model or model_params)")
    return state


def model_state(model: nn.Module, model_params: ModelParams, taxonomy: Taxonomy) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the model on its own."""
    return {
        "model": model.state_dict(),
        "model_params": model_params.model_dump(mode="json"),
        "taxonomy": {
            "name": taxonomy.name,
            "classes": list(taxonomy.classes),
            "palette": [list(c) for c in taxonomy.palette],
        },
    }


def model_from_checkpoint(state: dict[str, Any]) -> tuple[SegmentationModel, Taxonomy]:
    taxonomy = Taxonomy(
        state["taxonomy"]["name"],
        tuple(state["taxonomy"]["classes"]),
        tuple(tuple(c) for c in state["taxonomy"]["palette"]),
    )
    params = ModelParams.model_validate({**state["model_params"], "pretrained": None})
    model = build_model(params, taxonomy.num_classes)
    model.load_state_dict(state["model"])
    return model, taxonomy


def load_for_inference(
    path: Path,
    device: torch.device,
) -> tuple[SegmentationModel, Taxonomy, ErrorLocalizationNetwork | None]:
    """The model, its taxonomy and its ELN (when the checkpoint has one), on ``device``."""
    state = load_checkpoint(path)
    model, taxonomy = model_from_checkpoint(state)
    eln = eln_from_checkpoint(state, taxonomy.num_classes)
    model.to(device)
    if eln is not None:
        eln.to(device)
    return model, taxonomy, eln


def eln_from_checkpoint(state: dict[str, Any], num_classes: int) -> ErrorLocalizationNetwork | None:
    if "eln" not in state:
        return None
    params = ModelParams.model_validate({**state["model_params"], "pretrained": None})
    eln = build_eln(params, num_classes)
    eln.load_state_dict(state["eln"])
    return eln.eval()
