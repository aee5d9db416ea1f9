"""The loop's rounds: per-round paths and params, and appending a round to params.yaml.

Every round ``rK`` lives under ``rounds/rK/``: ``train/`` (checkpoints, history, the MLflow
run id), ``export/``, ``label/`` (the labeled pool and its manifest), ``select/`` (pseudo-labels
for the next round, ``selection.json``, ``annotate_next.txt``), ``eval/`` (``eval.json``,
confusion matrix) and ``metrics.json`` (what ``dvc metrics show`` lists).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from segloop.atomic_files import write_text_atomic
from segloop.errors import ParamsError
from segloop.params import Params, load_params

ROUNDS_DIR = Path("rounds")
REPORTS_DIR = Path("reports")


@dataclass(frozen=True)
class RoundPaths:
    root: Path

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def checkpoint(self) -> Path:
        return self.train / "best.pt"

    @property
    def tracking(self) -> Path:
        return self.train / "mlflow.json"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def label(self) -> Path:
        return self.root / "label"

    @property
    def select(self) -> Path:
        return self.root / "select"

    @property
    def pseudo(self) -> Path:
        return self.select / "pseudo"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"


def round_paths(name: str) -> RoundPaths:
    return RoundPaths(ROUNDS_DIR / name)


def round_params(path: Path | None, name: str, overrides: list[str] | None = None) -> Params:
    """params.yaml as round ``name`` sees it: its ``set`` overrides, then the command line's,
    then the round's paths (outputs under rounds/<name>/, inputs from the previous round)."""
    base = load_params(path, overrides)
    if name not in base.rounds:
        known = ", ".join(base.rounds) or "none"
        raise ParamsError(f"no round {name!r} in the params (rounds: {known})")
    spec = base.rounds[name]
    here = round_paths(name)
    sets = [f"{key}={json.dumps(value)}" for key, value in flatten_set(spec.set).items()]
    auto = [
        f"train.out_dir={here.train}",
        f"export.checkpoint={here.checkpoint}",
        f"export.out={here.export}",
        f"label.export_dir={here.export}",
        f"label.out={here.label}",
        f"selection.predictions={here.label}",
        f"selection.out={here.pseudo}",
        f"eval.checkpoint={here.checkpoint}",
        f"eval.out={here.eval / 'eval.json'}",
    ]
    if spec.previous is not None:
        before = round_paths(spec.previous)
        auto.append(f"methods.pseudo_labels={before.pseudo}")
        if spec.init == "previous":
            auto.append(f"methods.init_from={before.checkpoint}")
    try:
        return load_params(path, [*sets, *(overrides or []), *auto])
    except ParamsError as exc:
        raise ParamsError(f"round {name} (rounds.{name}.set): {exc}") from None


def flatten_set(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys (a round's ``set`` as overrides; params for MLflow).
    Nested mappings (``selection: {alpha: 0.5}``, what ``dvc exp run -S`` writes) and dotted
    keys (``selection.alpha: 0.5``) are both accepted."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_set(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def round_index(params: Params, name: str) -> int:
    return list(params.rounds).index(name)


def next_round_name(names: list[str]) -> str:
    numbers = [int(m.group(1)) for n in names if (m := re.fullmatch(r"r(\d+)", n))]
    return f"r{max(numbers, default=-1) + 1}"


def append_round(path: Path, params: Params) -> str:
    """Append the next round to ``path`` (params.yaml), copying the last round's overrides,
    indented as the file's rounds are; ``rounds:`` must be the file's last section. The file
    is rewritten whole and put back as it was if it no longer validates. Returns the new
    round's name."""
    if not params.rounds:
        raise ParamsError(f"{path}: no rounds to continue; add r0 under 'rounds:' first")
    text = path.read_text()
    section = re.search(r"^rounds:\s*$", text, flags=re.MULTILINE)
    if section is None:
        raise ParamsError(f"{path}: no top-level 'rounds:' section")
    last_section = re.findall(r"^([A-Za-z_]+):", text, flags=re.MULTILINE)[-1]
    if last_section != "rounds":
        raise ParamsError(f"{path}: 'rounds:' must be the last section to append to it")
    previous = list(params.rounds)[-1]
    name = next_round_name(list(params.rounds))
    spec = params.rounds[previous]
    key = re.search(r"^( +)[^\s#]", text[section.end() :], flags=re.MULTILINE)  # their indent
    outer = key.group(1) if key else "  "
    inner = outer * 2
    lines = [
        f"{outer}{name}:",
        f"{inner}previous: {previous}",
        f"{inner}after: rounds/{previous}",
        f"{inner}init: {spec.init}",
    ]
    if spec.set:
        dumped = yaml.safe_dump({"set": spec.set}, default_flow_style=False, sort_keys=False)
        lines += [f"{inner}{line}" for line in dumped.splitlines()]
    else:
        lines.append(f"{inner}set: {{}}")
    write_text_atomic(path, text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    try:
        load_params(path)  # the file must still validate
    except ParamsError:
        write_text_atomic(path, text)  # as it was
        raise
    return name
