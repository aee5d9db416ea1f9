"""``segloop export``: ONNX graphs + metadata (+ a TensorRT engine) from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from segloop.cli_options import ParamsOption, RoundOption, SetOption, params_from_cli

app = typer.Typer(help="Export a checkpoint to ONNX (and TensorRT).")
console = Console()


@app.command()
def export(
    params_path: ParamsOption = None,
    overrides: SetOption = None,
    checkpoint: Annotated[Path | None, typer.Option(help="default <train.out_dir>/best.pt")] = None,
    out: Annotated[Path | None, typer.Option(help="export directory [export.out]")] = None,
    engine: Annotated[
        Literal["onnx", "trt"] | None,
        typer.Option(help="also build a TensorRT engine [export.engine]"),
    ] = None,
    precision: Annotated[
        Literal["fp32", "fp16", "int8"] | None,
        typer.Option(help="TensorRT precision [export.tensorrt.precision]"),
    ] = None,
    triton: Annotated[
        Path | None, typer.Option(help="also write a Triton model repository for the labeler here")
    ] = None,
    round_name: RoundOption = None,
) -> None:
    """teacher.onnx, eln.onnx, labeler.onnx and metadata.json, gated by PyTorch parity."""
    from export.exporter import export_checkpoint

    params = params_from_cli(params_path, overrides, round_name)
    updates: dict[str, object] = {}
    if out is not None:
        updates["out"] = out
    if engine is not None:
        updates["engine"] = engine
    if precision is not None:
        updates["tensorrt"] = params.export.tensorrt.model_copy(update={"precision": precision})
    params = params.model_copy(update={"export": params.export.model_copy(update=updates)})
    if params.export.engine == "trt":
        from inference_server.tensorrt_runtime import current_identity

        current_identity()  # fail before exporting when TensorRT or the GPU is missing
    path = checkpoint or params.export.checkpoint or params.train.out_dir / "best.pt"
    metadata = export_checkpoint(params, path)
    parity = metadata.parity
    console.print(
        f"exported {', '.join(metadata.graphs)} -> {params.export.out} "
        f"(input {metadata.input_size[0]}x{metadata.input_size[1]}, opset {metadata.opset})\n"
        f"parity on {parity['frames']} {params.export.parity_split} frames: teacher argmax "
        f"agreement {100 * parity['teacher_argmax_agreement']:.3f}%, max score difference "
        f"{parity['teacher_max_score_diff']:.2e}; labeler agreement "
        f"{100 * parity['labeler_label_agreement']:.3f}%"
    )
    if params.export.engine == "trt":
        from export.engine import build_labeler_engine

        plan, built = build_labeler_engine(params, metadata)
        console.print(f"TensorRT engine {'built' if built else 'from cache'} -> {plan}")
    if triton is not None:
        from export.triton import write_triton_repository

        serve = params.serve
        folders = write_triton_repository(
            params.export.out,
            metadata,
            triton,
            max_batch_size=params.export.tensorrt.max_batch,
            preferred_batch=min(serve.max_batch, params.export.tensorrt.max_batch),
            max_queue_delay_us=int(serve.max_wait_ms * 1000),
        )
        console.print(f"Triton model repository -> {', '.join(str(f) for f in folders)}")
    if round_name is not None and params.loop.tracking.enabled:
        from segloop.rounds import round_paths
        from segloop.tracking import LoopTracker

        tracker = LoopTracker(params)
        run_id = tracker.round_run_id(round_paths(round_name))
        tracker.log_artifact(run_id, params.export.out, "export")
        tracker.log_metrics(
            run_id,
            {
                "export/teacher_argmax_agreement": parity["teacher_argmax_agreement"],
                "export/teacher_max_score_diff": parity["teacher_max_score_diff"],
            },
        )
