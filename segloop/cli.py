"""The ``segloop`` command root.

Stage commands are registered by name and imported only when they run (click's lazy-group
pattern, on typer's group class), so ``segloop --help`` is instant and torch-free commands
never load torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.core
from rich.console import Console

from segloop.errors import SegloopError

# command name -> (module, attribute holding a Typer app, one-line help)
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("segloop.data_cli", "app", "Generate the embedded dataset and write splits."),
    "train": ("training.cli", "train_app", "Train a segmentation model (needs the train extra)."),
    "eval": ("training.cli", "eval_app", "Evaluate a checkpoint: mIoU, per-class IoU, accuracy."),
    "predict": (
        "training.cli",
        "predict_app",
        "Write a split's label/confidence/reliability maps.",
    ),
    "select": ("segloop.select_cli", "app", "DARS + reliability selection of pseudo-labels."),
    "export": ("export.cli", "app", "Export a checkpoint to ONNX graphs (and a TensorRT engine)."),
    "serve": ("inference_server.serve_cli", "app", "Serve an export over HTTP (torch-free)."),
    "rounds": ("segloop.rounds_cli", "app", "Append a loop round; write the per-round report."),
    "label": (
        "inference_server.label_cli",
        "app",
        "Label images, folders, lists and videos with an export (torch-free).",
    ),
}


class LazyGroup(typer.core.TyperGroup):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in LAZY_COMMANDS:
            return None
        module_name, attribute, _ = LAZY_COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise SegloopError(
                f"'segloop {cmd_name}' needs the Python package {exc.name!r}; install the "
                "extra: pip install 'segloop[train]'"
            ) from None
        command = typer.main.get_command(getattr(module, attribute))
        command.name = cmd_name
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, LAZY_COMMANDS[name][2]) for name in sorted(LAZY_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    help="segloop: turn unlabeled driving footage into segmentation training data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root() -> None:
    """segloop: turn unlabeled driving footage into segmentation training data."""


def main() -> None:
    """Console-script entry point: user mistakes print one clear message and exit 2; Ctrl-C
    exits 130 with a note on resuming."""
    try:
        app(prog_name="segloop")
    except SegloopError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True, soft_wrap=True).print(
            "interrupted: finished checkpoints and outputs are kept; rerun the same command "
            "to resume"
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
