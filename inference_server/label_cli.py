"""``segloop label``: label images, folders, globs, list files and videos with an export
(torch-free: this command never imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from segloop.cli_options import ParamsOption, SetOption, params_from_cli

app = typer.Typer(help="Label frames with an exported model.")
console = Console()


@app.command()
def label(
    inputs: Annotated[
        list[str], typer.Argument(help="image folders, globs, .txt lists, images or videos")
    ],
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
) -> None:
    """Write label/, confidence/, reliability/ PNGs and manifest.jsonl; reruns resume."""
    from inference_server.backends import open_labeler
    from inference_server.labeler import LabelRun, LabelSettings, plan_frames, write_summary
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
    extra += [f"label.{key}={value}" for key, value in options.items() if value is not None]
    params = params_from_cli(params_path, extra).label
    metadata = read_metadata(params.export_dir)
    sources = expand_inputs(inputs, root)
    settings = LabelSettings(
        out=params.out,
        batch_size=params.batch_size,
        decode_workers=params.decode_workers,
        write_workers=params.write_workers,
        every=params.every,
        fps=params.fps,
        overlays=params.overlays,
        png_compression=params.png_compression,
    )
    manifest = Manifest(params.out, metadata.engine_hash)
    if dry_run:
        manifest.load()
    else:
        manifest.open()
    plan = plan_frames(sources, manifest, settings)
    if dry_run:
        for job in plan.jobs:
            for task in job.tasks:
                console.print(f"{task.frame_id} -> {task.key}", highlight=False)
        console.print(
            f"would label {plan.todo} frames from {len(sources)} sources ({plan.done} done, "
            f"{plan.stale} stale from another engine, {len(plan.errors)} unopenable videos)"
        )
        return
    labeler = open_labeler(params.export_dir, params.backend, params.threads, metadata=metadata)
    try:
        with labeler:
            summary = LabelRun(labeler, metadata, manifest, settings).run(plan)
    finally:
        manifest.close()
    report = write_summary(
        params.out,
        summary,
        {
            "backend": params.backend,
            "engine_hash": metadata.engine_hash,
            "export_dir": str(params.export_dir),
        },
    )
    console.print(
        f"labeled {summary.frames} frames in {summary.wall_s:.1f}s "
        f"({summary.frames_per_s:.1f} frames/s) on {params.backend}; {summary.errors} errors, "
        f"{summary.skipped} already done, {summary.stale} stale relabeled -> {params.out}"
    )
    if summary.frames:
        top = sorted(summary.class_fractions.items(), key=lambda kv: -kv[1])[:5]
        console.print(f"classes: {', '.join(f'{n} {100 * f:.1f}%' for n, f in top)}")
    console.print(f"summary -> {report}")
    for example in summary.error_examples:
        console.print(f"[yellow]error[/] {example}", highlight=False)
