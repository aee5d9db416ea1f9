"""The semi-supervised ablation on the embedded benchmark (issue: methods, "The ablation").

Every row gets the same total number of training iterations ``--budget``:

- ``supervised`` trains on the labeled split for the whole budget;
- every other row warm-starts from a supervised model trained for half the budget (one per
  head and seed, with the ELN learned on the way, as round 0 of the loop gives) and trains the
  other half with its methods switched on;
- ``dars`` and ``combined`` first label the pool with the warm model (``segloop predict``) and
  select pseudo-labels with DARS at alpha 0.2 (+ ELN reliability) (``segloop select``).

Everything runs through the ``segloop`` CLI, so the ablation exercises the product. Runs are
resumable: a finished stage (its ``metrics.json`` / ``eval.json`` exists) is skipped and an
interrupted training resumes from its ``last.pt``; rerun the same command to continue.

    python benchmarks/ablation.py --seeds 0 1 --rows supervised mean-teacher
    python benchmarks/ablation.py --report          # markdown table of what has finished
    python benchmarks/ablation.py --root runs/pilot --budget 1000 --seeds 0   # a quick pilot
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from segloop_command import run_segloop

ROOT = Path("runs/ablation")


@dataclass(frozen=True)
class Row:
    head: str
    overrides: list[str] = field(default_factory=list)
    offline: bool = False  # DARS-selected pseudo-labels from the warm model
    warm: bool = True


SSL = ["methods.unlabeled=true"]
U2PL = ["methods.u2pl.enabled=true", "methods.u2pl.sce_weight=0.1"]
ROWS: dict[str, Row] = {
    "supervised": Row("softmax", warm=False),
    "mean-teacher": Row("softmax", [*SSL, "methods.confidence_threshold=0.95"]),
    "u2pl": Row("softmax", [*SSL, *U2PL]),
    "ecoc": Row("ecoc", [*SSL, "methods.confidence_threshold=0.95"]),
    "ecoc+eln": Row("ecoc", [*SSL, "methods.eln.enabled=true"]),
    "dars": Row("softmax", [], offline=True),
    "des4": Row("prototype", SSL),
    "combined": Row("ecoc", [*SSL, *U2PL, "methods.eln.enabled=true"], offline=True),
}
HEADS = {
    "softmax": ["methods.eln.enabled=true"],
    "ecoc": ["model.head=ecoc", "methods.eln.enabled=true"],
    "prototype": ["model.head=prototype", "methods.des4.enabled=true"],
}


def train(out: Path, steps: int, seed: int, common: list[str], extra: list[str]) -> None:
    if (out / "metrics.json").exists():
        return
    run_segloop(
        "train",
        sets=[
            *common,
            *extra,
            f"train.out_dir={out}",
            f"train.steps={steps}",
            f"train.seed={seed}",
        ],
    )


def evaluate(out: Path, common: list[str], extra: list[str]) -> None:
    if not (out / "eval.json").exists():
        run_segloop("eval", sets=[*common, *extra, f"train.out_dir={out}"])


def run_row(root: Path, name: str, seed: int, budget: int, common: list[str]) -> None:
    row = ROWS[name]
    out = root / name / f"seed{seed}"
    head = [o for o in HEADS[row.head] if not o.startswith("methods.eln")]
    if not row.warm:
        train(out, budget, seed, common, head)
        evaluate(out, common, head)
        return
    warm = root / "warm" / row.head / f"seed{seed}"
    train(warm, budget // 2, seed, common, HEADS[row.head])
    extra = [*HEADS[row.head], *row.overrides, f"methods.init_from={warm / 'best.pt'}"]
    if "methods.eln.enabled=true" not in row.overrides:
        extra = [o for o in extra if not o.startswith("methods.eln")]
    if row.offline:
        pool, pseudo = out / "pool", out / "pseudo"
        selection = [
            f"selection.predictions={pool}",
            f"selection.out={pseudo}",
            "selection.alpha=0.2",
        ]
        if not (pseudo / "selection.json").exists():
            run_segloop(
                "predict", "--checkpoint", str(warm / "best.pt"), sets=[*common, *selection]
            )
            run_segloop("select", "--measure", sets=[*common, *selection])
        extra += [f"methods.pseudo_labels={pseudo}"]
    train(out, budget - budget // 2, seed, common, extra)
    evaluate(out, common, extra)


def report(root: Path) -> str:
    """Markdown: per row mean and spread over seeds of val mIoU, overall and per condition."""
    lines = [
        "| row | seeds | mIoU | day | dusk | fog | rain | pseudo-label precision / "
        "coverage | ELN error P / R / F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        evals = [json.loads(p.read_text()) for p in sorted((root / name).glob("seed*/eval.json"))]
        if not evals:
            continue

        def stat(values: list[float]) -> str:
            mean = 100 * statistics.mean(values)
            spread = 100 * (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
            return f"{mean:.1f} ± {spread:.1f}"

        cells = [stat([e["miou"] for e in evals])]
        for condition in ("day", "dusk", "fog", "rain"):
            cells.append(stat([e["by_condition"][condition]["miou"] for e in evals]))
        selections = [
            json.loads(p.read_text())
            for p in sorted((root / name).glob("seed*/pseudo/selection.json"))
        ]
        quality = [s["quality"] for s in selections if "quality" in s]
        cells.append(
            " / ".join(
                [stat([q["precision"] for q in quality]), stat([q["coverage"] for q in quality])]
            )
            if quality
            else "-"
        )
        eln = [e["eln_error_localization"] for e in evals if "eln_error_localization" in e]
        cells.append(
            " / ".join(stat([e[k] for e in eln]) for k in ("precision", "recall", "f1"))
            if eln
            else "-"
        )
        lines.append(f"| {name} | {len(evals)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--budget", type=int, default=3000, help="total iterations per row")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        help="extra params override for every run, e.g. train.threads=2",
    )
    parser.add_argument("--report", action="store_true", help="print the table and exit")
    parser.add_argument("--root", type=Path, default=ROOT, help="where the runs live")
    args = parser.parse_args()

    if args.report:
        print(report(args.root))
        return
    common = ["train.eval_every=250", "train.checkpoint_every=250", *args.sets]
    for seed in args.seeds:
        for name in args.rows:
            start = time.perf_counter()
            run_row(args.root, name, seed, args.budget, common)
            print(f"{name} seed {seed}: {time.perf_counter() - start:.0f}s", flush=True)
    print(report(args.root))


if __name__ == "__main__":
    main()
