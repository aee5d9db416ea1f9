"""``segloop select``: DARS + reliability selection of pool predictions (torch-free)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from segloop.cli_options import ParamsOption, SetOption, params_from_cli

app = typer.Typer(help="Select the next round's pseudo-labels from pool predictions.")
console = Console()


@app.command()
def select(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    measure: Annotated[
        bool, typer.Option(help="report precision/coverage against the pool's ground truth")
    ] = False,
) -> None:
    """Per-class DARS thresholds over the whole pool, unreliable pixels to ignore."""
    from segloop.datasets import read_mask
    from segloop.pool_selection import pseudo_label_quality, select_pool
    from segloop.splits import split_samples

    params = params_from_cli(params_path, overrides)
    taxonomy = params.data.taxonomy.build()
    labeled = split_samples(params.data, "labeled", with_masks=True)
    masks = [
        read_mask(s.mask, taxonomy) for s in track(labeled, "reading labels") if s.mask is not None
    ]
    pool = split_samples(params.data, "unlabeled", with_masks=measure)
    keys = [s.key for s in pool]
    summary = select_pool(keys, masks, taxonomy, params.selection)
    console.print(
        f"kept {100 * summary['kept_fraction']:.1f}% of {summary['frames']} frames' "
        f"pixels (alpha {summary['alpha']:g}) -> {params.selection.out}"
    )
    if measure:
        truths = [read_mask(s.mask, taxonomy) for s in pool if s.mask is not None]
        if len(truths) != len(keys):
            console.print("[yellow]the pool has no complete ground truth; nothing measured")
            return
        quality = pseudo_label_quality(params.selection.out, keys, truths, taxonomy.num_classes)
        summary["quality"] = quality
        (params.selection.out / "selection.json").write_text(json.dumps(summary, indent=2) + "\n")
        console.print(
            f"pseudo-label precision {100 * quality['precision']:.1f}%, "
            f"coverage {100 * quality['coverage']:.1f}%"
        )
