"""``segloop rounds``: append a round to params.yaml, and the per-round report (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from segloop.atomic_files import write_csv_atomic
from segloop.cli_options import ParamsOption, SetOption, params_from_cli

app = typer.Typer(help="The loop's rounds.", no_args_is_help=True)
console = Console()


@app.command()
def add(params_path: ParamsOption = None) -> None:
    """Append the next round to params.yaml (copying the last round's overrides)."""
    from segloop.params import default_params_path
    from segloop.rounds import append_round

    path = params_path or default_params_path() or Path("params.yaml")
    params = params_from_cli(path, None)
    name = append_round(path, params)
    console.print(f"added round {name} to {path}; 'dvc repro' runs it")


def collect(params_rounds: list[str]) -> list[dict[str, Any]]:
    """Each finished round's metrics and per-class IoU, in loop order."""
    from segloop.rounds import round_paths

    rows = []
    for name in params_rounds:
        paths = round_paths(name)
        eval_json = paths.eval / "eval.json"
        if not (paths.metrics.exists() and eval_json.exists()):
            continue
        report = json.loads(eval_json.read_text())
        rows.append(
            {
                "round": name,
                **json.loads(paths.metrics.read_text()),
                "by_condition": {k: v["miou"] for k, v in report["by_condition"].items()},
                "per_class_iou": report["per_class_iou"],
            }
        )
    return rows


@app.command()
def report(params_path: ParamsOption = None, overrides: SetOption = None) -> None:
    """reports/miou_by_round.csv, reports/per_class_iou.csv and their PNG charts."""
    from segloop.plots import write_round_charts
    from segloop.rounds import REPORTS_DIR

    params = params_from_cli(params_path, overrides)
    rows = collect(list(params.rounds))
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    scalar_keys = sorted(
        {k for r in rows for k, v in r.items() if isinstance(v, int | float) and k != "round"}
    )
    write_csv_atomic(
        REPORTS_DIR / "miou_by_round.csv",
        ["round", "index", *scalar_keys],
        (
            [row["round"], index, *(row.get(k, "") for k in scalar_keys)]
            for index, row in enumerate(rows)
        ),
    )
    classes = list(params.data.taxonomy.build().classes)
    write_csv_atomic(
        REPORTS_DIR / "per_class_iou.csv",
        ["round", "class", "iou"],
        (
            [row["round"], name, "" if (iou := row["per_class_iou"].get(name)) is None else iou]
            for row in rows
            for name in classes
        ),
    )
    charts = write_round_charts(rows, classes, REPORTS_DIR) if rows else []
    if rows and params.loop.tracking.enabled:
        from segloop.tracking import LoopTracker

        tracker = LoopTracker(params)
        parent = tracker.parent_run_id()
        for path in [*charts, REPORTS_DIR / "miou_by_round.csv"]:
            tracker.log_artifact(parent, path, "report")
        tracker.finish(parent)  # the loop's last stage; a later round's stages log to it again
    for row in rows:
        console.print(f"{row['round']}: val mIoU {100 * row['miou']:.2f}")
    console.print(f"{len(rows)} rounds -> {REPORTS_DIR}")
