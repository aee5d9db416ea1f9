"""``segloop label``: label images, folders, globs, list files and videos with an export
(torch-free: this command never imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from segloop.cli_options import (
    ParamsOption,
    RoundOption,
    SetOption,
    option_overrides,
    params_from_cli,
)
from segloop.errors import SegloopError

if TYPE_CHECKING:
    from inference_server.labeler import LabelSummary

app = typer.Typer(help="Label frames with an exported model.")
console = Console()


@app.command()
def label(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="image folders, globs, .txt lists, images or videos"),
    ] = None,
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    export_dir: Annotated[Path | None, typer.Option(help="[label.export_dir]")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder [label.out]")] = None,
    backend: Annotated[
        str | None, typer.Option(help="ort-cpu | ort-cuda | ort-trt | trt [label.backend]")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="base of relative paths in list files [the list's folder]")
    ] = None,
    every: Annotated[int | None, typer.Option(help="video: every N-th frame [label.every]")] = None,
    fps: Annotated[float | None, typer.Option(help="video: frames per second [label.fps]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="[label.batch_size]")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="list what would be labeled; write nothing")
    ] = False,
    round_name: RoundOption = None,
) -> None:
    """Write label/, confidence/, reliability/ PNGs and manifest.jsonl; reruns resume."""
    from inference_server.labeler import label_sources, plan_frames, settings_from
    from inference_server.manifest import Manifest
    from inference_server.metadata import read_metadata
    from inference_server.sources import expand_inputs

    extra = list(overrides or [])
    options: dict[str, object] = {
        "every": every,
        "fps": fps,
        "batch_size": batch_size,
        "export_dir": export_dir,
        "out": out,
        "backend": backend,
    }
    extra += option_overrides("label", options)
    full = params_from_cli(params_path, extra, round_name)
    params = full.label
    if not inputs:
        if round_name is None:
            raise SegloopError("name what to label (folders, globs, lists, videos), or --round")
        inputs = [str(full.loop.pool)]
        root = root or full.loop.pool_root or full.data.root
    sources = expand_inputs(inputs, root)
    if dry_run:
        metadata = read_metadata(params.export_dir)
        manifest = Manifest(params.out, metadata.engine_hash)
        manifest.load()
        plan = plan_frames(sources, manifest, settings_from(params))
        for job in plan.jobs:
            for task in job.tasks:
                console.print(f"{task.frame_id} -> {task.key}", highlight=False)
        console.print(
            f"would label {plan.todo} frames from {len(sources)} sources ({plan.done} done, "
            f"{plan.stale} stale from another engine, {len(plan.errors)} unopenable videos)"
        )
        return
    summary, report = label_sources(params, sources)
    print_summary(summary, params.backend, params.out, report)
    if round_name is not None and full.loop.tracking.enabled:
        from segloop.rounds import round_paths
        from segloop.tracking import LoopTracker

        tracker = LoopTracker(full)
        run_id = tracker.round_run_id(round_paths(round_name))
        tracker.log_metrics(
            run_id,
            {
                "label/frames": summary.frames + summary.skipped,
                "label/errors": summary.errors,
                "label/frames_per_s": summary.frames_per_s,
            },
        )


def print_summary(summary: LabelSummary, backend: str, out: Path, report: Path) -> None:
    console.print(
        f"labeled {summary.frames} frames in {summary.wall_s:.1f}s "
        f"({summary.frames_per_s:.1f} frames/s) on {backend}; {summary.errors} errors, "
        f"{summary.skipped} already done, {summary.stale} stale relabeled -> {out}"
    )
    if summary.frames:
        top = sorted(summary.class_fractions.items(), key=lambda kv: -kv[1])[:5]
        console.print(f"classes: {', '.join(f'{n} {100 * f:.1f}%' for n, f in top)}")
    console.print(f"summary -> {report}")
    for example in summary.error_examples:
        console.print(f"[yellow]error[/] {example}", highlight=False)
