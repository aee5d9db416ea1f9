"""``segloop data``: generate the embedded dataset and write splits (torch-free)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from segloop.cli_options import ParamsOption, SetOption, params_from_cli

app = typer.Typer(help="Generate the embedded dataset and write splits.", no_args_is_help=True)
console = Console()


@app.command()
def synth(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    root: Annotated[Path | None, typer.Option(help="output root (default data.root)")] = None,
) -> None:
    """Render the procedural driving dataset in the Cityscapes layout."""
    from segloop.synth import write_clips, write_dataset

    params = params_from_cli(params_path, overrides)
    out = root or params.data.root
    start = time.perf_counter()
    counts = write_dataset(out, params.data.synth)
    clips = write_clips(out, params.data.synth)
    console.print(
        f"wrote {counts['train']} train + {counts['val']} val frames and {len(clips)} clips "
        f"to {out} ({counts['rendered']} frames rendered in {time.perf_counter() - start:.1f}s)"
    )


@app.command()
def split(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    fraction: Annotated[str | None, typer.Option(help="labeled share, e.g. 1/8")] = None,
    seed: Annotated[int | None, typer.Option(help="split seed")] = None,
) -> None:
    """Write labeled.txt / unlabeled.txt / val.txt and split.json."""
    from segloop.splits import make_split, write_split

    extra = list(overrides or [])
    if fraction is not None:
        extra.append(f"data.split.fraction='{fraction}'")
    if seed is not None:
        extra.append(f"data.split.seed={seed}")
    params = params_from_cli(params_path, extra)
    result = make_split(params.data)
    out = write_split(result, params.data)
    console.print(
        f"{len(result.labeled)} labeled, {len(result.unlabeled)} unlabeled, "
        f"{len(result.val)} val frames -> {out}"
    )


@app.command()
def prepare(params_path: ParamsOption = None, overrides: SetOption = None) -> None:
    """The loop's data stage: render the embedded dataset when data.generate, then split."""
    from segloop.splits import make_split, write_split
    from segloop.synth import write_clips, write_dataset

    params = params_from_cli(params_path, overrides)
    if params.data.generate:
        start = time.perf_counter()
        counts = write_dataset(params.data.root, params.data.synth)
        write_clips(params.data.root, params.data.synth)
        console.print(
            f"embedded dataset at {params.data.root}: {counts['rendered']} frames rendered "
            f"in {time.perf_counter() - start:.1f}s"
        )
    result = make_split(params.data)
    out = write_split(result, params.data)
    console.print(
        f"{len(result.labeled)} labeled, {len(result.unlabeled)} unlabeled, "
        f"{len(result.val)} val frames -> {out}"
    )
