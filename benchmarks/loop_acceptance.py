"""The loop's acceptance experiment: every round at the embedded benchmark configuration,
against a control that continues supervised-only training from round 0 for the same
iterations (issue: the loop, "Acceptance").

    python benchmarks/loop_acceptance.py                # run (resumable), then print the table
    python benchmarks/loop_acceptance.py --report       # the table of what has finished
    # on two cores, the control beside the loop's rounds once round 0 is done:
    python benchmarks/loop_acceptance.py --part control --control-set train.threads=1

Steps, all through the product's own commands:

1. ``git clone`` this repository (its committed HEAD) into ``<root>/loop`` and size its
   ``params.yaml`` rounds for the benchmark (``--r0-steps``, ``--round-steps``, ``--batch``;
   every other param stays as committed), then ``dvc repro`` there: data, every round, report.
   An interrupted run resumes like any ``dvc repro`` (training from ``last.pt``, labeling from
   its manifest).
2. The control, in ``<root>/control/<round>``: for each semi-supervised round, supervised
   training on the labeled split only, as many iterations at the same batch size, warm-started
   from round 0's best checkpoint and then from the previous leg (the rounds restart their
   schedule each round; so do the legs); ``segloop eval`` on each leg.

Both run under the active environment's ``segloop`` and ``dvc`` (put the venv on ``PATH``).
The control runs the clone's own ``segloop`` package (``python -m segloop.cli`` from inside
the clone), the same code as the loop when the environment's install is that commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from segloop_command import run_command, run_segloop

ROOT = Path("runs/acceptance")
REPO = Path(__file__).resolve().parents[1]


def size_rounds(params_file: Path, r0_steps: int, round_steps: int, batch: int) -> list[str]:
    """Rewrite the clone's rounds for the benchmark budget; returns the round names."""
    tree = yaml.safe_load(params_file.read_text())
    for spec in tree["rounds"].values():
        train = spec.setdefault("set", {}).setdefault("train", {})
        train["batch_size"] = batch
        if spec.get("previous") is None:
            train["steps"] = r0_steps
        else:
            train["steps"] = round_steps
            spec["set"].setdefault("methods", {})["unlabeled_batch_size"] = batch
    params_file.write_text(yaml.safe_dump(tree, sort_keys=False))
    return list(tree["rounds"])


def run_loop(root: Path, args: argparse.Namespace) -> tuple[Path, list[str]]:
    loop = root / "loop"
    if not (loop / "dvc.yaml").exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(loop, ignore_errors=True)
        run_command(["git", "clone", "--quiet", str(REPO), str(loop)], REPO)
    rounds = size_rounds(loop / "params.yaml", args.r0_steps, args.round_steps, args.batch)
    run_command(["dvc", "repro"], loop)
    return loop, rounds


def run_control(root: Path, loop: Path, rounds: list[str], args: argparse.Namespace) -> None:
    trained = loop / "rounds" / rounds[0] / "train" / "metrics.json"
    if not trained.exists():
        sys.exit(f"the control starts from round 0's best checkpoint: {trained} is not there yet")
    start = trained.parent / "best.pt"
    for name in rounds[1:]:
        out = (root / "control" / name).resolve()
        if not (out / "eval.json").exists():
            sets = [
                f"methods.init_from={start}",
                f"train.steps={args.round_steps}",
                f"train.batch_size={args.batch}",
                f"train.out_dir={out}",
                f"eval.out={out / 'eval.json'}",
                *args.control_sets,
            ]
            run_segloop("train", sets=sets, cwd=loop)
            run_segloop("eval", sets=sets, cwd=loop)
        start = out / "best.pt"


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def report(root: Path) -> str:
    """Markdown: val mIoU per round (overall and per condition, pseudo-label quality) with
    the control leg of the same total iterations beside each semi-supervised round."""
    conditions = ("day", "dusk", "fog", "rain")
    lines = [
        "| round | val mIoU | " + " | ".join(conditions) + " | pseudo-label precision / "
        "coverage | control (supervised only) val mIoU |",
        "|---|---|" + "---|" * len(conditions) + "---|---|",
    ]
    rounds = sorted((root / "loop" / "rounds").glob("r*/metrics.json"))
    for path in rounds:
        name = path.parent.name
        metrics = _read(path)
        control = _read(root / "control" / name / "eval.json")
        cells = [f"{100 * metrics['miou']:.1f}"]
        cells += [f"{100 * metrics.get(f'miou_{c}', float('nan')):.1f}" for c in conditions]
        if "pseudo_label_precision" in metrics:
            cells.append(
                f"{100 * metrics['pseudo_label_precision']:.1f}% / "
                f"{100 * metrics['pseudo_label_coverage']:.1f}%"
            )
        else:
            cells.append("-")
        cells.append(f"{100 * control['miou']:.1f}" if control else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--r0-steps", type=int, default=3000)
    parser.add_argument("--round-steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--part",
        choices=("all", "loop", "control"),
        default="all",
        help="run only the loop, or only the control (which needs round 0 finished); two "
        "processes, one per part, share the cores better than one after the other",
    )
    parser.add_argument(
        "--control-set",
        dest="control_sets",
        action="append",
        default=[],
        help="extra override for the control's trainings, e.g. train.threads=1",
    )
    parser.add_argument("--report", action="store_true", help="print the table and exit")
    args = parser.parse_args()
    root = args.root.resolve()
    if not args.report:
        if shutil.which("dvc") is None:
            sys.exit("put the venv on PATH first: dvc must be runnable")
        loop = root / "loop"
        if args.part in ("all", "loop"):
            loop, rounds = run_loop(root, args)
        elif (loop / "params.yaml").exists():
            rounds = list(yaml.safe_load((loop / "params.yaml").read_text())["rounds"])
        else:
            sys.exit(f"no loop at {loop}: run --part loop (or all) first")
        if args.part in ("all", "control"):
            run_control(root, loop, rounds, args)
    print(report(root))


if __name__ == "__main__":
    main()
