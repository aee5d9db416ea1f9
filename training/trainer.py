"""Supervised training loop (``segloop train``).

Poly LR with warm-up, SGD or AdamW, AMP on CUDA, optional gradient clipping. Checkpoints
``last.pt`` every ``checkpoint_every`` steps and at the end; a rerun resumes from it and
reproduces the uninterrupted run (batches are a function of seed and step; optimizer, scaler
and RNG state are saved). ``best.pt`` keeps the weights with the best validation mIoU.
``history.jsonl`` logs losses and evaluations; ``metrics.json`` summarises the run.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from segloop.params import Params
from segloop.splits import read_conditions, split_samples
from segloop.taxonomy import Taxonomy
from training.checkpoint import load_checkpoint, model_state, save_checkpoint
from training.data import LabeledFrames, StepSampler, train_transform
from training.evaluation import evaluate_with_params
from training.models import SegmentationModel, build_model
from training.schedule import poly_lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from segloop.errors import SegloopError

        raise SegloopError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: torch.nn.Module, params: Params) -> torch.optim.Optimizer:
    t = params.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=t.lr,
            momentum=t.momentum,
            weight_decay=t.weight_decay,
            nesterov=False,
        )
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_miou: float
    final_miou: float
    images_per_s: float
    wall_s: float


def _append_history(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_history(path: Path, after_step: int) -> None:
    """Drop records past the resumed step (a killed run may have logged beyond its checkpoint)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line)["step"] <= after_step
    ]
    path.write_text("".join(f"{line}\n" for line in kept))


class Trainer:
    def __init__(self, params: Params) -> None:
        self.params = params
        t = params.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        self.out = t.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.taxonomy: Taxonomy = params.data.taxonomy.build()
        seed_everything(t.seed)
        samples = split_samples(params.data, "labeled", with_masks=True)
        if t.labels == "full":
            samples += split_samples(params.data, "unlabeled", with_masks=True)
        self.dataset = LabeledFrames(
            samples, self.taxonomy, train_transform(t), params.data.on_bad_file
        )
        self.val_samples = split_samples(params.data, "val", with_masks=True)
        self.conditions = read_conditions(params.data.root)
        self.model: SegmentationModel = build_model(params.model, self.taxonomy.num_classes)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model, params)
        self.amp = t.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best_miou = float("-inf")
        self.last_miou = float("nan")
        self._resume_rng: torch.Tensor | None = None
        self._resume()

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            (self.out / "history.jsonl").unlink(missing_ok=True)
            return
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_miou = float(state["best_miou"])
        self.last_miou = float(state.get("last_miou", float("nan")))
        self._resume_rng = state["torch_rng"]
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        _truncate_history(self.out / "history.jsonl", self.step)

    def _checkpoint(self, name: str) -> None:
        state = model_state(self.model, self.params.model, self.taxonomy)
        state.update(
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            step=self.step,
            best_miou=self.best_miou,
            last_miou=self.last_miou,
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            params=self.params.model_dump(mode="json"),
        )
        save_checkpoint(self.out / name, state)

    def _validate(self) -> float:
        result = evaluate_with_params(
            self.model,
            self.val_samples,
            self.taxonomy,
            self.device,
            self.params,
            self.conditions,
            progress=False,
        )
        report = result.report(self.taxonomy)
        self.last_miou = float(report["miou"])
        record = {
            "step": self.step,
            "val_miou": self.last_miou,
            "val_by_condition": {k: v["miou"] for k, v in report["by_condition"].items()},
        }
        _append_history(self.out / "history.jsonl", record)
        if self.last_miou > self.best_miou:
            self.best_miou = self.last_miou
            save_checkpoint(
                self.out / "best.pt",
                {
                    **model_state(self.model, self.params.model, self.taxonomy),
                    "step": self.step,
                    "val_miou": self.last_miou,
                },
            )
        return self.last_miou

    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> float:
        t = self.params.train
        lr = poly_lr(t.lr, self.step, t.steps, t.poly_power, t.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = self.model(images)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=self.taxonomy.ignore_index)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if t.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train to ``train.steps``; ``stop_at`` ends early after that step (an interruption)."""
        t = self.params.train
        sampler = StepSampler(len(self.dataset), t.batch_size, t.seed, t.steps, self.step)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=t.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=t.num_workers > 0,
        )
        batches = iter(loader)
        # Starting the loader draws from the global RNG; a resumed run restores the
        # checkpoint's RNG state only now, so its dropout masks match the uninterrupted run.
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
            self._resume_rng = None
        self.model.train()
        start_step, start_time = self.step, time.perf_counter()
        loss_sum, loss_count = 0.0, 0
        columns = (
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.3f}  {task.fields[ips]:.1f} img/s  "
                "val mIoU {task.fields[miou]}"
            ),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(
                "train", total=t.steps, completed=self.step, loss=0.0, ips=0.0, miou="-"
            )
            for images, masks in batches:
                loss = self.train_step(
                    images.to(self.device, non_blocking=True),
                    masks.to(self.device, non_blocking=True),
                )
                self.step += 1
                loss_sum, loss_count = loss_sum + loss, loss_count + 1
                elapsed = time.perf_counter() - start_time
                ips = (self.step - start_step) * t.batch_size / max(elapsed, 1e-9)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    _append_history(
                        self.out / "history.jsonl",
                        {
                            "step": self.step,
                            "loss": loss_sum / loss_count,
                            "lr": self.optimizer.param_groups[0]["lr"],
                        },
                    )
                    loss_sum, loss_count = 0.0, 0
                if self.step % t.eval_every == 0 or self.step == t.steps:
                    progress.update(task, miou=f"{100 * self._validate():.1f}")
                if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                    self._checkpoint("last.pt")
                progress.update(task, completed=self.step, loss=loss, ips=ips)
                if stop_at is not None and self.step >= stop_at:
                    break
        wall = time.perf_counter() - start_time
        result = TrainResult(
            self.out,
            self.step,
            self.best_miou,
            self.last_miou,
            (self.step - start_step) * t.batch_size / max(wall, 1e-9),
            wall,
        )
        if self.step == t.steps:
            self._write_metrics(result)
        return result

    def _write_metrics(self, result: TrainResult) -> None:
        summary = {
            "steps": result.steps,
            "best_val_miou": result.best_miou,
            "final_val_miou": result.final_miou,
            "train_images_per_s": result.images_per_s,
            "train_wall_s": result.wall_s,
            "labeled_frames": len(self.dataset),
            "skipped_frames": self.dataset.skipped,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }
        (self.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
