"""MLflow tracking of the loop (imports mlflow only when tracking is on).

One parent run per loop (tag ``segloop.loop``), found again by every stage process; one child
run per round, created by the round's train stage, which writes its id to
``rounds/<round>/train/mlflow.json`` so the round's later stages (export, label, select,
eval) log into the same run. Runs carry the git commit, the DVC stage and hashes of the data
split. The labeler of every round is registered as a model version; the ``champion`` alias
moves to a version only when its validation mIoU beats the current champion's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from segloop.atomic_files import write_json_atomic
from segloop.errors import SegloopError
from segloop.params import Params
from segloop.rounds import RoundPaths, flatten_set

CHAMPION = "champion"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the sqlite store ``mlflow.db`` here."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def split_hash(params: Params) -> str:
    digest = hashlib.sha256()
    for name in ("labeled.txt", "unlabeled.txt", "val.txt"):
        path = params.data.split.dir / name
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()[:16]


def flatten(tree: dict[str, Any]) -> dict[str, str]:
    """Dotted keys and string values, as MLflow params take them."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten_set(tree).items()}


class LoopTracker:
    """The loop's MLflow runs, through one ``MlflowClient``."""

    def __init__(self, params: Params) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise SegloopError(
                "loop.tracking.enabled needs mlflow; install 'segloop[train]' or set "
                "loop.tracking.enabled: false"
            ) from None
        self.params = params
        self.config = params.loop.tracking
        self.client = MlflowClient(tracking_uri())
        experiment = self.client.get_experiment_by_name(self.config.experiment)
        self.experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(self.config.experiment)
        )

    def _tags(self, stage: str) -> dict[str, str]:
        return {
            "segloop.loop": self.config.loop_name,
            "git.commit": git_commit(),
            "dvc.stage": stage,
            "data.root": str(self.params.data.root),
            "data.split_sha256": split_hash(self.params),
        }

    def parent_run_id(self) -> str:
        """The loop's parent run, created on first use."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`segloop.loop` = '{self.config.loop_name}' and tags.`segloop.kind` = 'loop'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            return str(runs[0].info.run_id)
        run = self.client.create_run(
            self.experiment_id,
            tags={**self._tags("loop"), "segloop.kind": "loop"},
            run_name=self.config.loop_name,
        )
        from mlflow.entities import Param

        loop = {
            "loop": self.params.loop.model_dump(mode="json"),
            "rounds": {k: v.model_dump(mode="json") for k, v in self.params.rounds.items()},
        }
        values = [Param(k[:250], v[:6000]) for k, v in flatten(loop).items()]
        for start in range(0, len(values), 100):
            self.client.log_batch(run.info.run_id, params=values[start : start + 100])
        return str(run.info.run_id)

    def start_round(self, name: str, paths: RoundPaths, fingerprint: str) -> str:
        """The round's child run: reused when the train stage resumes the same run (same
        fingerprint), created otherwise; its id goes to ``paths.tracking``."""
        if paths.tracking.exists():
            saved = json.loads(paths.tracking.read_text())
            if saved.get("fingerprint") == fingerprint:
                return str(saved["run_id"])
        parent = self.parent_run_id()
        run = self.client.create_run(
            self.experiment_id,
            tags={
                **self._tags(f"train@{name}"),
                "segloop.kind": "round",
                "segloop.round": name,
                "mlflow.parentRunId": parent,
            },
            run_name=name,
        )
        run_id = str(run.info.run_id)
        self.log_params(run_id)
        write_json_atomic(
            paths.tracking,
            {"run_id": run_id, "parent_run_id": parent, "fingerprint": fingerprint},
        )
        return run_id

    def round_run_id(self, paths: RoundPaths) -> str:
        if not paths.tracking.exists():
            raise SegloopError(
                f"{paths.tracking}: no MLflow run for this round; run its train stage first"
            )
        return str(json.loads(paths.tracking.read_text())["run_id"])

    def log_params(self, run_id: str) -> None:
        from mlflow.entities import Param

        sections = ("data", "model", "train", "methods", "selection", "export", "label")
        tree = {name: getattr(self.params, name).model_dump(mode="json") for name in sections}
        flat = [Param(k[:250], v[:6000]) for k, v in flatten(tree).items()]
        for start in range(0, len(flat), 100):
            self.client.log_batch(run_id, params=flat[start : start + 100])

    def log_history(self, run_id: str, history: Path) -> None:
        """Per-step training losses and validation mIoU from the trainer's history.jsonl."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for line in history.read_text().splitlines():
            record = json.loads(line)
            step = int(record.pop("step"))
            for key, value in record.items():
                if isinstance(value, int | float):
                    metrics.append(Metric(f"train/{key}", float(value), now, step))
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def log_metrics(self, run_id: str, values: dict[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            self.client.log_metric(run_id, key, float(value), step=step or 0)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_image(self, run_id: str, image: np.ndarray, key: str, step: int) -> None:
        self.client.log_image(run_id, image, key=key, step=step)

    def register_labeler(self, run_id: str, artifact_path: str, miou: float) -> tuple[str, bool]:
        """Register the round's export as a new model version; move ``champion`` to it when
        its validation mIoU beats the champion's. Returns (version, became champion)."""
        from mlflow.exceptions import MlflowException

        name = self.config.model_name
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"
        version = self.client.create_model_version(
            name, source, run_id=run_id, tags={"val_miou": f"{miou:.6f}"}
        )
        try:
            champion = self.client.get_model_version_by_alias(name, CHAMPION)
            best = float(champion.tags.get("val_miou", "-inf"))
        except MlflowException:
            best = float("-inf")
        promoted = miou > best
        if promoted:
            self.client.set_registered_model_alias(name, CHAMPION, version.version)
        return str(version.version), promoted

    def finish(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FINISHED")
