"""The train and eval stages of a loop round (``segloop train|eval --round rK``): MLflow
logging around training, and the round's evaluation outputs (metrics.json for DVC, the
confusion matrix PNG, validation overlays, the registered labeler and its champion alias)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segloop.atomic_files import write_json_atomic
from segloop.datasets import read_image
from segloop.fingerprint import run_fingerprint
from segloop.imageio import colour_overlay
from segloop.params import Params, eval_window
from segloop.plots import write_confusion_png
from segloop.rounds import round_index, round_paths
from segloop.splits import split_samples
from segloop.tracking import LoopTracker
from training.checkpoint import load_for_inference
from training.evaluation import frame_probs
from training.trainer import TrainResult, resolve_device

EXPORT_ARTIFACTS = "export"


def start_round_tracking(params: Params, name: str) -> tuple[LoopTracker, str] | None:
    """Open (or reopen, when resuming the same run) the round's child run."""
    if not params.loop.tracking.enabled:
        return None
    tracker = LoopTracker(params)
    return tracker, tracker.start_round(name, round_paths(name), run_fingerprint(params))


def log_training(tracking: tuple[LoopTracker, str] | None, result: TrainResult) -> None:
    if tracking is None:
        return
    tracker, run_id = tracking
    tracker.log_history(run_id, result.out_dir / "history.jsonl")
    tracker.log_metrics(
        run_id,
        {
            "train/best_val_miou": result.best_miou,
            "train/images_per_s": result.images_per_s,
            "train/wall_s": result.wall_s,
        },
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def round_metrics(name: str, report: dict[str, Any]) -> dict[str, Any]:
    """What ``dvc metrics show`` lists for the round."""
    paths = round_paths(name)
    metrics: dict[str, Any] = {
        "miou": report["miou"],
        "pixel_accuracy": report["pixel_accuracy"],
        **{f"miou_{k}": v["miou"] for k, v in report["by_condition"].items()},
    }
    quality = _read_json(paths.select / "selection.json").get("quality")
    if quality:
        metrics["pseudo_label_precision"] = quality["precision"]
        metrics["pseudo_label_coverage"] = quality["coverage"]
    labeling = _read_json(paths.label / "summary.json")
    if labeling.get("frames_labeled"):
        metrics["labeling_frames_per_s"] = labeling["frames_per_s"]
    if "eln_error_localization" in report:
        metrics["eln_error_f1"] = report["eln_error_localization"]["f1"]
    return metrics


@torch.no_grad()
def validation_overlays(params: Params, checkpoint: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` validation frames with the round's prediction blended in."""
    if count == 0:
        return []
    device = resolve_device(params.train.device)
    model, taxonomy, _ = load_for_inference(checkpoint, device)
    model.eval()
    palette = np.array(taxonomy.palette, dtype=np.uint8)
    overlays = []
    for sample in split_samples(params.data, "val", with_masks=False)[:count]:
        image = read_image(sample.image)
        probs = frame_probs(model, image, device, eval_window(params), params.eval.overlap)
        label = probs.argmax(dim=1)[0].cpu().numpy()
        overlays.append(colour_overlay(image, label, palette))
    return overlays


def finish_round(params: Params, name: str, report: dict[str, Any]) -> dict[str, Any]:
    """Write the round's metrics.json and confusion PNG; log them, the overlays and the
    registered labeler to MLflow; close the round's run. Returns the metrics."""
    paths = round_paths(name)
    metrics = round_metrics(name, report)
    write_json_atomic(paths.metrics, metrics)
    confusion = paths.eval / "confusion.png"
    write_confusion_png(confusion, np.array(report["confusion_matrix"]))
    if not params.loop.tracking.enabled:
        return metrics
    tracker = LoopTracker(params)
    run_id = tracker.round_run_id(paths)
    step = round_index(params, name)
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    tracker.log_metrics(run_id, numeric, step=step)
    tracker.log_metrics(
        tracker.parent_run_id(), {f"round/{k}": v for k, v in numeric.items()}, step
    )
    for iou_name, iou in report["per_class_iou"].items():
        if iou is not None:
            tracker.log_metrics(run_id, {f"iou/{iou_name}": iou}, step=step)
    tracker.log_artifact(run_id, confusion, "eval")
    tracker.log_artifact(run_id, paths.eval / "eval.json", "eval")
    checkpoint = params.eval.checkpoint or paths.checkpoint
    for i, overlay in enumerate(
        validation_overlays(params, checkpoint, params.loop.tracking.overlays)
    ):
        tracker.log_image(run_id, overlay, key=f"val_overlay_{i}", step=step)
    version, promoted = tracker.register_labeler(run_id, EXPORT_ARTIFACTS, metrics["miou"])
    metrics_note = {"registered_version": version, "champion": promoted}
    tracker.client.set_tag(run_id, "segloop.registered_version", version)
    tracker.finish(run_id)
    return {**metrics, **metrics_note}
