"""Options every stage command shares: ``--params`` and ``--set`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segloop.params import Params, default_params_path, load_params

ParamsOption = Annotated[
    Path | None, typer.Option("--params", "-p", help="params file [default: ./params.yaml]")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="override a param, e.g. train.steps=200 (repeatable)"),
]


def params_from_cli(path: Path | None, overrides: list[str] | None) -> Params:
    return load_params(path or default_params_path(), overrides)
