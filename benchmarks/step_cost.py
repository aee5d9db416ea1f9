"""Seconds per training step of each recipe at the params.yaml size (planning figures).

    python benchmarks/step_cost.py --threads 2

Each recipe trains from scratch into runs/step_cost/<recipe>; the first ``--warmup`` steps
are not timed (the first steps of a process run markedly slower than later ones). Besides
wall time per step it prints the process's CPU time (user, system) and minor page faults per
step, which a busy shared machine disturbs less than wall time. Needs the
embedded dataset and splits (``segloop data synth && segloop data split``).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

from segloop.params import load_params
from training.trainer import Trainer

RECIPES = {
    "supervised": [],
    "mean-teacher": ["methods.unlabeled=true", "methods.confidence_threshold=0.95"],
    "u2pl": ["methods.unlabeled=true", "methods.u2pl.enabled=true"],
    "supervised+eln": ["methods.eln.enabled=true"],
    "supervised+eln-1aux": ["methods.eln.enabled=true", "methods.eln.aux_alphas=[20.0]"],
    "mean-teacher+eln": ["methods.unlabeled=true", "methods.eln.enabled=true"],
    "mean-teacher+frozen-eln": [
        "methods.unlabeled=true",
        "methods.eln.enabled=true",
        "methods.eln.train_during_ssl=false",
    ],
    "ecoc": ["model.head=ecoc", "methods.unlabeled=true", "methods.confidence_threshold=0.95"],
    "ecoc+eln": ["model.head=ecoc", "methods.unlabeled=true", "methods.eln.enabled=true"],
    "combined": [
        "model.head=ecoc",
        "methods.unlabeled=true",
        "methods.u2pl.enabled=true",
        "methods.eln.enabled=true",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="params override, repeatable"
    )
    args = parser.parse_args()
    for name in args.recipes:
        out = Path("runs/step_cost") / name
        shutil.rmtree(out, ignore_errors=True)
        params = load_params(
            "params.yaml",
            [
                *RECIPES[name],
                f"train.out_dir={out}",
                # one step past the timed window: the last step validates and saves
                f"train.steps={args.warmup + args.steps + 1}",
                "train.eval_every=100000",
                f"train.threads={args.threads}",
                "train.warmup_steps=1",
                *args.overrides,
            ],
        )
        trainer = Trainer(params)
        trainer.run(stop_at=args.warmup)
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        trainer.run(stop_at=args.warmup + args.steps)
        assert trainer.step == args.warmup + args.steps  # a full window, no final validation
        seconds = (time.perf_counter() - start) / args.steps
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults = (after.ru_minflt - before.ru_minflt) / args.steps
        user = (after.ru_utime - before.ru_utime) / args.steps
        system = (after.ru_stime - before.ru_stime) / args.steps
        print(
            f"{name:14s} {seconds:.2f} s/step (CPU user {user:.2f} s, system {system:.2f} s, "
            f"{faults:.0f} page faults)",
            flush=True,
        )


if __name__ == "__main__":
    main()
