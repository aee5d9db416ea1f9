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


RoundOption = Annotated[
    str | None,
    typer.Option("--round", help="run as this round of the loop: rounds.<name> params and paths"),
]


def params_from_cli(
    path: Path | None, overrides: list[str] | None, round_name: str | None = None
) -> Params:
    """The params a command runs with: the file (default ./params.yaml), ``--set`` overrides,
    and with ``--round`` that round's overrides and paths (:func:`segloop.rounds.round_params`)."""
    if round_name is not None:
        from segloop.rounds import round_params

        return round_params(path or default_params_path(), round_name, overrides)
    return load_params(path or default_params_path(), overrides)


def option_overrides(section: str, options: dict[str, object]) -> list[str]:
    """``section.key=value`` overrides for the command-line options that were given."""
    return [f"{section}.{key}={value}" for key, value in options.items() if value is not None]
