"""The loop through the real ``dvc repro`` in a temporary copy of the project: two tiny
rounds, their outputs and metrics, the MLflow parent/child runs and registry, the no-op second
repro, a last-round param change re-running only that round, and a killed repro resuming."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="dvc needs git")


def _tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["data"]["synth"].update(
        height=32, width=64, train_frames=48, val_frames=8, workers=1, clips=0
    )
    params["data"]["split"]["fraction"] = "1/4"
    params["model"].update(
        tiny_widths=[8, 8, 16, 16],
        decoder_channels=16,
        low_level_channels=8,
        projection_dim=8,
        aspp_rates=[1, 2, 3],
    )
    params["model"]["eln"]["decoder_channels"] = 16
    params["train"].update(
        crop=[32, 64], batch_size=4, warmup_steps=2, threads=1, device="cpu", steps=4,
        eval_every=4, checkpoint_every=2,
    )  # fmt: skip
    params["methods"]["unlabeled_batch_size"] = 4
    params["export"]["parity_frames"] = 4
    params["label"]["batch_size"] = 4
    params["loop"]["tracking"]["overlays"] = 1
    params["rounds"] = {
        "r0": {"previous": None, "after": "data/splits", "set": {"methods.eln.enabled": True}},
        "r1": {
            "previous": "r0",
            "after": "rounds/r0",
            "set": {"methods": {"eln": {"enabled": True}, "unlabeled": True}},
        },
    }
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        if (ROOT / name).is_file():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    _tiny_params(tmp_path / "params.yaml")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *command],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_two_round_loop_through_dvc_and_mlflow(project: Path) -> None:
    first = _dvc("repro", cwd=project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    stages = ["data"] + [f"{s}@{r}" for r in ("r0", "r1") for s in
              ("train", "export", "label", "select", "eval")] + ["report"]  # fmt: skip
    assert sorted(_ran(first.stdout)) == sorted(stages)
    for name in ("r0", "r1"):
        round_dir = project / "rounds" / name
        for path in ("train/best.pt", "export/labeler.onnx", "export/metadata.json",
                     "label/manifest.jsonl", "select/selection.json", "select/annotate_next.txt",
                     "eval/eval.json", "eval/confusion.png", "metrics.json"):  # fmt: skip
            assert (round_dir / path).exists(), f"{name}/{path}"
        metrics = json.loads((round_dir / "metrics.json").read_text())
        assert 0 <= metrics["miou"] <= 1 and "pseudo_label_precision" in metrics
        manifest = (round_dir / "label" / "manifest.jsonl").read_text().splitlines()
        assert len(manifest) == 36  # the 3/4 of 48 frames in the pool
    for name in ("miou_by_round.csv", "per_class_iou.csv", "miou_by_round.png"):
        assert (project / "reports" / name).exists()
    shown = _dvc("metrics", "show", "--json", cwd=project)
    assert shown.returncode == 0 and "rounds/r1/metrics.json" in shown.stdout

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segloop")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("segloop.kind") == "loop"]
    children = [r for r in runs if r.data.tags.get("segloop.kind") == "round"]
    assert len(parents) == 1
    assert sorted(r.info.run_name for r in children) == ["r0", "r1"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["git.commit"] != "unknown"
        assert "miou" in child.data.metrics and "train/loss" in child.data.metrics
        assert child.data.params["train.steps"] == "4"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "export")}
        assert "export/labeler.onnx" in artifacts
    versions = client.search_model_versions("name='segloop-labeler'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("segloop-labeler", "champion")
    best = max(versions, key=lambda v: float(v.tags["val_miou"]))
    assert champion.version == best.version

    second = _dvc("repro", cwd=project)
    assert second.returncode == 0 and _ran(second.stdout) == []

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["rounds"]["r1"]["set"]["selection"] = {"alpha": 0.5}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _dvc("repro", cwd=project)
    assert third.returncode == 0, third.stderr[-3000:]
    ran = _ran(third.stdout)
    assert ran and all(s.endswith("@r1") or s == "report" for s in ran), ran


def test_a_killed_repro_resumes_training_from_its_checkpoint(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["rounds"] = {"r0": params["rounds"]["r0"]}
    params["train"].update(steps=40, checkpoint_every=2, eval_every=40)
    params["loop"]["tracking"]["enabled"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train@r0"], cwd=project, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    history = project / "rounds" / "r0" / "train" / "history.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (project / "rounds/r0/train/last.pt").exists() and history.exists():
            steps = [json.loads(line)["step"] for line in history.read_text().splitlines()]
            if steps and steps[-1] >= 20:  # last.pt is then at step >= 18 (every 2 steps)
                break
        time.sleep(0.2)
    import psutil  # a dvc dependency

    # SIGKILL dvc and everything under it (dvc may start the stage command in its own group)
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in tree:
        member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(tree, timeout=30)
    import torch

    saved = torch.load(project / "rounds/r0/train/last.pt", weights_only=False)["step"]
    assert 10 <= saved < 40
    # mark the killed run's first record (step 10 <= the checkpoint's step): a resumed run
    # keeps it, a restart would rewrite it
    lines = history.read_text().splitlines()
    lines[0] = json.dumps({**json.loads(lines[0]), "marker": True})
    history.write_text("".join(f"{line}\n" for line in lines))
    resumed = _dvc("repro", "train@r0", cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in history.read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]  # (validation records are separate)
    assert steps == sorted(set(steps)) and steps[-1] == 40  # resumed, not restarted
    assert records[0].get("marker") is True
