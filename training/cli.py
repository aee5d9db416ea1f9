"""``segloop train`` and ``segloop eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from segloop.atomic_files import write_json_atomic
from segloop.cli_options import ParamsOption, RoundOption, SetOption, params_from_cli

console = Console()
train_app = typer.Typer(help="Train a segmentation model.")
eval_app = typer.Typer(help="Evaluate a checkpoint.")
predict_app = typer.Typer(help="Predict a split's label, confidence and reliability maps.")


@train_app.command()
def train(
    params_path: ParamsOption = None, overrides: SetOption = None, round_name: RoundOption = None
) -> None:
    """Train (supervised, or with the methods switched on); resumes from <out_dir>/last.pt."""
    from training.round_stage import log_training, start_round_tracking
    from training.trainer import Trainer

    params = params_from_cli(params_path, overrides, round_name)
    tracking = start_round_tracking(params, round_name) if round_name else None
    result = Trainer(params).run()
    log_training(tracking, result)
    console.print(
        f"trained {result.steps} steps"
        + (f" (resumed at step {result.start_step})" if result.start_step else "")
        + f" in {result.wall_s:.0f}s "
        f"({result.images_per_s:.1f} img/s); best val mIoU {100 * result.best_miou:.2f} "
        f"-> {result.out_dir}/best.pt"
    )


@eval_app.command()
def evaluate(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    checkpoint: Annotated[Path | None, typer.Option(help="default <train.out_dir>/best.pt")] = None,
    out: Annotated[Path | None, typer.Option(help="default <train.out_dir>/eval.json")] = None,
    round_name: RoundOption = None,
) -> None:
    """mIoU, per-class IoU and pixel accuracy on a split; writes a JSON report. With
    --round, also the round's metrics.json, confusion PNG and MLflow run (closed here)."""
    from training.evaluation import evaluate_checkpoint

    params = params_from_cli(params_path, overrides, round_name)
    path = checkpoint or params.eval.checkpoint or params.train.out_dir / "best.pt"
    report = evaluate_checkpoint(params, path)
    target = out or params.eval.out or params.train.out_dir / "eval.json"
    write_json_atomic(target, report)
    print_report(report, target)
    if round_name is not None:
        from training.round_stage import finish_round

        metrics = finish_round(params, round_name, report)
        console.print(f"round {round_name}: {json.dumps(metrics)}", highlight=False)


def print_report(report: dict[str, Any], target: Path) -> None:
    table = Table(title=f"{report['split']}: {report['frames']} frames")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in report["per_class_iou"].items():
        table.add_row(name, "-" if iou is None else f"{100 * iou:.1f}")
    table.add_row("[bold]mIoU", f"[bold]{100 * report['miou']:.2f}")
    table.add_row("pixel acc.", f"{100 * report['pixel_accuracy']:.2f}")
    for name, cond in report["by_condition"].items():
        table.add_row(f"mIoU ({name})", f"{100 * cond['miou']:.2f}")
    for name, value in report.get("eln_error_localization", {}).items():
        table.add_row(f"ELN error {name}", f"{100 * value:.1f}")
    console.print(table)
    if report["skipped"]:
        console.print(f"[yellow]skipped {len(report['skipped'])} bad frames (listed in the report)")
    console.print(f"report -> {target}")


@predict_app.command()
def predict(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    checkpoint: Annotated[Path | None, typer.Option(help="default <train.out_dir>/best.pt")] = None,
    split: Annotated[str, typer.Option(help="labeled | unlabeled | val")] = "unlabeled",
) -> None:
    """Write label/, confidence/ and reliability/ PNGs to selection.predictions (resumable)."""
    from segloop.params import eval_window
    from segloop.splits import split_samples
    from training.checkpoint import load_for_inference
    from training.host import configure_host
    from training.predict import claim_folder, predict_frames, predictor_stamp
    from training.trainer import resolve_device

    params = params_from_cli(params_path, overrides)
    path = checkpoint or params.train.out_dir / "best.pt"
    configure_host(params.train)
    device = resolve_device(params.train.device)
    model, _, eln = load_for_inference(path, device)
    samples = split_samples(params.data, split, with_masks=False)
    out = params.selection.predictions
    window = eval_window(params)
    if claim_folder(out, predictor_stamp(path, window, params.eval.overlap)):
        console.print(
            f"[yellow]{out}: removed maps made by another checkpoint, confidence encoding "
            "or window; predicting every frame again"
        )
    written = predict_frames(model, eln, samples, out, device, window, params.eval.overlap)
    console.print(
        f"predicted {written} of {len(samples)} frames -> {out}"
        + ("" if eln is not None else " (no ELN in the checkpoint: no reliability)")
    )
