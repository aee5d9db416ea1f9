"""``segloop select``: DARS + reliability selection of pool predictions (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from segloop.cli_options import ParamsOption, RoundOption, SetOption, params_from_cli
from segloop.params import Params

app = typer.Typer(help="Select the next round's pseudo-labels from pool predictions.")
console = Console()


def labeled_keys(label_dir: Path) -> list[str]:
    """Keys of the frames a ``segloop label`` run labeled successfully, from its manifest."""
    from segloop.errors import DataError
    from segloop.label_manifest import MANIFEST_FILE, read_rows

    rows = read_rows(label_dir / MANIFEST_FILE)
    if not rows:
        raise DataError(f"{label_dir}: no {MANIFEST_FILE} rows; run 'segloop label' first")
    return sorted({row["key"] for row in rows if row.get("status") == "ok"})


@app.command()
def select(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="a 'segloop label' output folder: select from its manifest's frames and write "
            "pseudo/, selection.json and annotate_next.txt beside the manifest"
        ),
    ] = None,
    measure: Annotated[
        bool, typer.Option(help="report precision/coverage against the pool's ground truth")
    ] = False,
    round_name: RoundOption = None,
) -> None:
    """Per-class DARS thresholds over the whole pool, unreliable pixels to ignore. With
    --round: from rounds/<name>/label into rounds/<name>/select, measured when the pool has
    ground truth."""
    from segloop.datasets import read_mask, sample_for_key
    from segloop.pool_selection import select_pool
    from segloop.splits import split_samples

    params = params_from_cli(params_path, overrides, round_name)
    select_dir = None
    if round_name is not None:
        from segloop.rounds import round_paths

        labels = round_paths(round_name).label
        select_dir = round_paths(round_name).select
    taxonomy = params.data.taxonomy.build()
    labeled = split_samples(params.data, "labeled", with_masks=True)
    masks = [
        read_mask(s.mask, taxonomy) for s in track(labeled, "reading labels") if s.mask is not None
    ]
    selection = params.selection
    report_dir = None
    if labels is not None:
        keys = labeled_keys(labels)
        report_dir = select_dir or labels
        selection = selection.model_copy(
            update={"predictions": labels, "out": report_dir / "pseudo"}
        )
        if round_name is not None:
            measure = measure or _pool_has_ground_truth(params, keys)
        pool = [sample_for_key(params.data.root, params.data.layout, k, measure) for k in keys]
    else:
        pool = split_samples(params.data, "unlabeled", with_masks=measure)
        keys = [s.key for s in pool]
    truths = None
    if measure:
        truths = [s.mask for s in pool if s.mask is not None and s.mask.exists()]
        if len(truths) != len(keys):
            console.print("[yellow]the pool has no complete ground truth; nothing measured")
            truths = None
    summary = select_pool(keys, masks, taxonomy, selection, report_dir, truths)
    report_dir = report_dir or selection.out
    console.print(
        f"kept {100 * summary['kept_fraction']:.1f}% of {summary['frames']} frames' "
        f"pixels (alpha {summary['alpha']:g}) -> {selection.out}; "
        f"annotate next -> {report_dir / 'annotate_next.txt'}"
    )
    if "quality" in summary:
        quality = summary["quality"]
        console.print(
            f"pseudo-label precision {100 * quality['precision']:.1f}%, "
            f"coverage {100 * quality['coverage']:.1f}%"
        )
    if round_name is not None and params.loop.tracking.enabled:
        from segloop.rounds import round_paths
        from segloop.tracking import LoopTracker

        tracker = LoopTracker(params)
        run_id = tracker.round_run_id(round_paths(round_name))
        values = {"select/kept_fraction": summary["kept_fraction"]}
        values.update({f"select/{k}": v for k, v in summary.get("quality", {}).items()})
        tracker.log_metrics(run_id, values)
        tracker.log_artifact(run_id, report_dir / "selection.json", "select")
        tracker.log_artifact(run_id, report_dir / "annotate_next.txt", "select")


def _pool_has_ground_truth(params: Params, keys: list[str]) -> bool:
    """True when every pool key maps to an existing mask (the embedded pool keeps its hidden
    ground truth, so pseudo-label precision can be measured)."""
    from segloop.datasets import sample_for_key
    from segloop.errors import DataError

    try:
        samples = [sample_for_key(params.data.root, params.data.layout, k, True) for k in keys]
    except DataError:
        return False
    return bool(samples) and all(s.mask is not None and s.mask.exists() for s in samples)
