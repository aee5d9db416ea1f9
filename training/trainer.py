"""The one training loop (``segloop train``): supervised, and semi-supervised with the
components that ``params.yaml``'s ``methods`` section switches on (see
:mod:`training.semi_supervised`).

Poly LR with warm-up, SGD or AdamW, AMP on CUDA, optional gradient clipping. Checkpoints
``last.pt`` every ``checkpoint_every`` steps and at the end; a rerun resumes from it and
reproduces the uninterrupted run (batches are a function of seed and step; optimizer, scaler
and RNG state are saved). ``best.pt`` keeps the weights with the best validation mIoU (with
``methods.eln.fit_only``, which trains only the ELN on a frozen model, the newest ELN);
when a semi-supervised run ends, ``methods.precise_bn`` recomputes its BatchNorm statistics
(:mod:`training.precise_bn`). ``history.jsonl`` logs losses and evaluations;
``metrics.json`` summarises the run.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from segloop.atomic_files import write_json_atomic, write_text_atomic
from segloop.errors import DataError, SegloopError
from segloop.fingerprint import run_fingerprint
from segloop.params import Params
from segloop.pool_selection import frame_class_counts
from segloop.run_environment import run_environment
from segloop.splits import read_conditions, split_samples
from segloop.taxonomy import Taxonomy
from training.aux_decoder_activity import activity_over_history, idle_decoders_warning
from training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    model_state,
    save_checkpoint,
)
from training.cpu_kernels import torch_cpu_kernels
from training.data import (
    LabeledFrames,
    StepBatches,
    StepSampler,
    UnlabeledFrames,
    pseudo_labeled_samples,
    train_transform,
    weak_transform,
)
from training.evaluation import evaluate_with_params
from training.host import configure_host
from training.methods.alignment import frame_groups
from training.models import SegmentationModel, build_model
from training.precise_bn import frame_batches, recompute_batchnorm
from training.pseudo_quality import (
    CORRECT,
    KEPT,
    VALID,
    pseudo_label_counts,
    quality,
    quality_over_history,
)
from training.rare_class_sampling import RareClassPlan, RareClassSampler
from training.schedule import poly_lr
from training.semi_supervised import StepObjective

_console = Console(stderr=True)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SegloopError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(parameters: list[torch.nn.Parameter], params: Params) -> torch.optim.Optimizer:
    t = params.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=t.lr,
            momentum=t.momentum,
            weight_decay=t.weight_decay,
            nesterov=False,
        )
    return torch.optim.AdamW(parameters, lr=t.lr, weight_decay=t.weight_decay)


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    start_step: int  # > 0 when this process resumed from last.pt; wall_s covers the rest
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
    write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def alignment_groups(
    params: Params, keys: list[str], conditions: dict[str, str]
) -> tuple[list[str], list[int]]:
    """The unlabeled frames' groups for distribution alignment (when it is on): their
    ``conditions`` (the dataset's, :func:`read_conditions`) under
    ``methods.alignment.groups: condition``, and under ``auto`` where the dataset lists them;
    else one group."""
    a = params.methods.alignment
    if not a.enabled or a.groups == "pool":
        return frame_groups(keys, None)
    if a.groups == "auto":
        return frame_groups(keys, conditions or None)
    if not conditions:
        raise DataError(
            f"{params.data.root}: methods.alignment.groups: condition needs the dataset's "
            "conditions.csv (image,condition); set it to pool to align the whole pool at once"
        )
    return frame_groups(keys, conditions)


class Trainer:
    def __init__(self, params: Params) -> None:
        self.params = params
        t, m = params.train, params.methods
        configure_host(t)
        self.device = resolve_device(t.device)
        self.out = t.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.taxonomy: Taxonomy = params.data.taxonomy.build()
        seed_everything(t.seed)
        samples = split_samples(params.data, "labeled", with_masks=True)
        if t.labels == "full":
            samples += split_samples(params.data, "unlabeled", with_masks=True)
        transform = train_transform(t)
        on_bad = params.data.on_bad_file
        rcs = t.rare_class_sampling
        self.dataset = LabeledFrames(
            samples,
            self.taxonomy,
            transform,
            on_bad,
            rcs.min_crop_ratio * rcs.min_pixels if rcs.enabled else 0.0,
        )
        self.rare_classes = self._rare_class_plan() if rcs.enabled else None
        pool = []
        if m.pseudo_labels is not None or m.unlabeled:
            pool = split_samples(params.data, "unlabeled", with_masks=False)
        self.pseudo: LabeledFrames | None = None
        if m.pseudo_labels is not None:
            self.pseudo = LabeledFrames(
                pseudo_labeled_samples(pool, m.pseudo_labels), self.taxonomy, transform, on_bad
            )
        self.conditions = read_conditions(params.data.root)
        self.unlabeled: UnlabeledFrames | None = None
        group_names: list[str] = []
        if m.unlabeled:
            measure = t.measure_pseudo_labels
            unlabeled_samples = (
                split_samples(params.data, "unlabeled", with_masks=True) if measure else pool
            )
            group_names, groups = alignment_groups(
                params, [s.key for s in unlabeled_samples], self.conditions
            )
            self.unlabeled = UnlabeledFrames(
                unlabeled_samples,
                weak_transform(t),
                on_bad,
                self.taxonomy if measure else None,
                groups,
            )
        self.val_samples = split_samples(params.data, "val", with_masks=True)
        self.model: SegmentationModel = build_model(params.model, self.taxonomy.num_classes)
        self.model.to(self.device)
        self.objective = StepObjective(
            self.model,
            params,
            self.taxonomy.num_classes,
            self.device,
            [mask for _, mask in self.dataset.pairs],
            group_names,
        )
        if m.init_from is not None:
            self._warm_start(m.init_from)
        # methods.eln.fit_only (params ensure the ELN is on): the model stays as warm-started;
        # only the ELN's modules learn.
        self.frozen_model = m.eln.fit_only
        trainable = [] if self.frozen_model else [*self.model.parameters()]
        for module in self.objective.trainable_modules().values():
            trainable += [p for p in module.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(trainable, params)
        self.amp = t.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best_miou = float("-inf")
        self.last_miou = float("nan")
        self._resume_rng: torch.Tensor | None = None
        self.precise_bn: dict[str, Any] | None = None  # its outcome, once training has ended
        self.fingerprint = run_fingerprint(params)
        self._resume()

    def _rare_class_plan(self) -> RareClassPlan:
        """Rare-class sampling's classes and probabilities over the labeled frames, shown."""
        rcs = self.params.train.rare_class_sampling
        counts = frame_class_counts(
            [mask for _, mask in self.dataset.pairs], self.taxonomy.num_classes
        )
        try:
            plan = RareClassPlan(counts, rcs.temperature, rcs.min_pixels)
        except ValueError as exc:
            raise SegloopError(str(exc)) from None
        names = self.taxonomy.classes
        order = np.argsort(-plan.probabilities, kind="stable")
        shown = ", ".join(f"{names[plan.classes[k]]} {plan.probabilities[k]:.3f}" for k in order)
        _console.print(f"rare-class sampling: P(class) {shown}")
        if plan.left_out.size:
            _console.print(
                "[yellow]warning:[/] rare-class sampling leaves out "
                + ", ".join(names[c] for c in plan.left_out)
                + f" (no labeled frame holds more than {rcs.min_pixels} pixels)"
            )
        return plan

    def _warm_start(self, path: Path) -> None:
        """Start from another run's weights (the supervised round): student, teacher, ELN."""
        state = load_checkpoint(path)
        try:
            self.model.load_state_dict(state["model"])
            if self.objective.eln is not None and "eln" in state:
                self.objective.eln.eln.load_state_dict(state["eln"])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise SegloopError(
                f"{path}: methods.init_from holds a model of another shape than the model "
                f"params describe ({first}); warm-start from a run with the same model section"
            ) from None
        self.objective.reset_teacher()

    def _resume(self) -> None:
        """Continue from last.pt when it was written by this same run (same fingerprint: the
        params that shape training and the content of its inputs); a checkpoint of another
        run in out_dir is set aside and training starts over."""
        path = self.out / "last.pt"
        if not path.exists():
            (self.out / "history.jsonl").unlink(missing_ok=True)
            return
        state = load_checkpoint(path)
        if state.get("fingerprint", self.fingerprint) != self.fingerprint:
            _console.print(
                f"{path} was written by a run with other params or inputs; starting over"
            )
            for name in ("last.pt", "best.pt", "history.jsonl", "metrics.json"):
                (self.out / name).unlink(missing_ok=True)
            return
        self.model.load_state_dict(state["model"])
        self.objective.load_state(state["objective"])
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
            objective=self.objective.state(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            step=self.step,
            best_miou=self.best_miou,
            last_miou=self.last_miou,
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            params=self.params.model_dump(mode="json"),
            fingerprint=self.fingerprint,
        )
        save_checkpoint(self.out / name, state)

    def _evaluate(self, model: SegmentationModel, key: str) -> float:
        """Validation mIoU of ``model``, logged to history.jsonl under ``key``."""
        result = evaluate_with_params(
            model,
            self.val_samples,
            self.taxonomy,
            self.device,
            self.params,
            self.conditions,
            progress=False,
        )
        report = result.report(self.taxonomy)
        record = {
            "step": self.step,
            key: float(report["miou"]),
            "val_by_condition": {k: v["miou"] for k, v in report["by_condition"].items()},
        }
        _append_history(self.out / "history.jsonl", record)
        return float(report["miou"])

    def _validate(self) -> float:
        model = self.objective.eval_model()
        self.last_miou = self._evaluate(model, "val_miou")
        # A frozen model scores the same at every validation: keep its newest ELN instead.
        if self.last_miou > self.best_miou or self.frozen_model:
            self.best_miou = self.last_miou
            best = {
                **model_state(model, self.params.model, self.taxonomy),
                "step": self.step,
                "val_miou": self.last_miou,
            }
            if self.objective.eln is not None:
                best["eln"] = self.objective.eln.eln.state_dict()
            save_checkpoint(self.out / "best.pt", best)
        return self.last_miou

    def train_step(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        unlabeled: torch.Tensor | None = None,
        unlabeled_truth: torch.Tensor | None = None,
        unlabeled_groups: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One optimiser step; returns every loss term and their total, and with the pool's
        hidden truth the pixel counts of the pseudo-labels the step kept (never a loss)."""
        t = self.params.train
        lr = poly_lr(t.lr, self.step, t.steps, t.poly_power, t.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, enabled=self.amp):
            terms = self.objective.terms(self.step, images, masks, unlabeled, unlabeled_groups)
            loss = torch.stack([v.float() for v in terms.values()]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if t.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.objective.after_step(self.step, masks)
        out = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        if self.objective.eln is not None:
            out.update(self.objective.eln.last_activity)
        if self.objective.alignment is not None and unlabeled is not None:
            out.update(self.objective.alignment.drift())
        if unlabeled_truth is not None:
            kept = self.objective.last_pseudo_labels
            assert kept is not None
            out.update(pseudo_label_counts(*kept, unlabeled_truth))
        return out

    def _loaders(self) -> tuple[Iterator[Any], Iterator[Any] | None, Iterator[Any] | None]:
        """Batch iterators for labeled, pseudo-labeled and unlabeled frames at this step."""
        t, m = self.params.train, self.params.methods
        pseudo_batch = round(t.batch_size * m.pseudo_fraction) if self.pseudo is not None else 0
        pseudo_batch = min(pseudo_batch, t.batch_size - 1)

        def loader(dataset: Any, sampler: StepBatches) -> Iterator[Any]:
            return iter(
                DataLoader(
                    dataset,
                    batch_sampler=sampler,
                    num_workers=t.num_workers,
                    pin_memory=self.device.type == "cuda",
                    persistent_workers=t.num_workers > 0,
                )
            )

        def steps(dataset: Any, batch: int, seed: int) -> StepSampler:
            return StepSampler(len(dataset), batch, seed, t.steps, self.step)

        labeled_batch = t.batch_size - pseudo_batch
        labeled = loader(
            self.dataset,
            steps(self.dataset, labeled_batch, t.seed)
            if self.rare_classes is None
            else RareClassSampler(self.rare_classes, labeled_batch, t.seed, t.steps, self.step),
        )
        pseudo = None
        if self.pseudo is not None and pseudo_batch > 0:
            pseudo = loader(self.pseudo, steps(self.pseudo, pseudo_batch, t.seed + 1))
        unlabeled = None
        if self.unlabeled is not None:
            batch = self.params.methods.unlabeled_batch_size
            unlabeled = loader(self.unlabeled, steps(self.unlabeled, batch, t.seed + 2))
        return labeled, pseudo, unlabeled

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train to ``train.steps``; ``stop_at`` ends early after that step (an interruption)."""
        t = self.params.train
        labeled, pseudo, unlabeled = self._loaders()
        # Starting the loader draws from the global RNG; a resumed run restores the
        # checkpoint's RNG state only now, so its dropout masks match the uninterrupted run.
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
            self._resume_rng = None
        self.model.train(not self.frozen_model)
        start_step, start_time = self.step, time.perf_counter()
        sums: dict[str, float] = {}
        count = 0
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
            for images, masks in labeled:
                if pseudo is not None:
                    extra_images, extra_masks = next(pseudo)
                    images = torch.cat([images, extra_images])
                    masks = torch.cat([masks, extra_masks])
                weak = truth = group = None
                if unlabeled is not None:
                    weak, truth, group = (x.to(self.device) for x in next(unlabeled))
                terms = self.train_step(
                    images.to(self.device, non_blocking=True),
                    masks.to(self.device, non_blocking=True),
                    weak,
                    truth if truth is not None and truth.numel() else None,
                    group,
                )
                self.step += 1
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                elapsed = time.perf_counter() - start_time
                ips = (self.step - start_step) * t.batch_size / max(elapsed, 1e-9)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    record = {
                        "step": self.step,
                        **{k: v / count for k, v in sums.items()},
                        "lr": self.optimizer.param_groups[0]["lr"],
                    }
                    if VALID in sums:
                        measured = quality(sums[VALID], sums[KEPT], sums[CORRECT])
                        record.update({f"pseudo_{k}": v for k, v in measured.items()})
                    _append_history(self.out / "history.jsonl", record)
                    sums, count = {}, 0
                if self.step % t.eval_every == 0 or self.step == t.steps:
                    miou = f"{100 * self._validate():.1f}"
                    progress.update(task, miou=miou)
                    if not progress.console.is_terminal:  # logs (CI, dvc repro): one line
                        progress.console.print(
                            f"step {self.step}/{t.steps}  loss {terms['loss']:.3f}  "
                            f"{ips:.1f} img/s  val mIoU {miou}"
                        )
                if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                    self._checkpoint("last.pt")
                progress.update(task, completed=self.step, loss=terms["loss"], ips=ips)
                if stop_at is not None and self.step >= stop_at:
                    break
        wall = time.perf_counter() - start_time
        if self.step == t.steps and self._wants_precise_bn():
            self._precise_batchnorm()
        result = TrainResult(
            self.out,
            self.step,
            start_step,
            self.best_miou,
            self.last_miou,
            (self.step - start_step) * t.batch_size / max(wall, 1e-9),
            wall,
        )
        if self.step == t.steps:
            self._write_metrics(result)
        return result

    def _wants_precise_bn(self) -> bool:
        m = self.params.methods
        return m.unlabeled and m.precise_bn.enabled and not m.eln.fit_only

    def _precise_batchnorm(self) -> None:
        """``methods.precise_bn``: recompute ``best.pt``'s BatchNorm statistics on clean
        labeled frames (training/precise_bn.py), validate it, and keep it where it scores at
        least the running statistics' mIoU. Runs once: ``best.pt`` records the outcome, so a
        rerun of a finished (or crashed-while-finishing) run does not repeat it."""
        path = self.out / "best.pt"
        state = load_checkpoint(path)
        if "precise_bn" not in state:
            model, _ = model_from_checkpoint(state)
            model.to(self.device)
            count = min(self.params.methods.precise_bn.frames, len(self.dataset.pairs))
            images = [image for image, _ in self.dataset.pairs[:count]]
            batches = frame_batches(
                images, self.params.train.crop, self.params.train.batch_size, self.device
            )
            recompute_batchnorm(model, batches, seed=self.params.train.seed)
            model.eval()
            running = float(state["val_miou"])
            precise = self._evaluate(model, "precise_bn_val_miou")
            kept = precise >= running
            if kept:
                state["model"] = model.state_dict()
                state["val_miou"] = precise
            state["precise_bn"] = {
                "frames": count,
                "val_miou_running_statistics": running,
                "val_miou_precise": precise,
                "kept": kept,
            }
            save_checkpoint(path, state)
            _console.print(
                f"BatchNorm statistics recomputed on {count} labeled frames: val mIoU "
                f"{100 * running:.2f} -> {100 * precise:.2f}, "
                + ("kept in best.pt" if kept else "not kept (best.pt keeps the running ones)")
            )
        self.precise_bn = state["precise_bn"]
        self.best_miou = float(state["val_miou"])

    def _write_metrics(self, result: TrainResult) -> None:
        summary = {
            "steps": result.steps,
            "resumed_at_step": result.start_step,
            "best_val_miou": result.best_miou,
            "final_val_miou": result.final_miou,
            "train_images_per_s": result.images_per_s,
            "train_wall_s": result.wall_s,
            "labeled_frames": len(self.dataset),
            "skipped_frames": self.dataset.skipped,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "environment": {**run_environment(), "torch_cpu_kernels": torch_cpu_kernels()},
        }
        measured = quality_over_history(self.out / "history.jsonl")
        if measured is not None:
            summary["pseudo_label_quality"] = measured
        activity = activity_over_history(self.out / "history.jsonl")
        if activity is not None:
            summary["eln_aux_decoders"] = activity
            warning = idle_decoders_warning(
                activity, list(self.params.methods.eln.aux_alphas), self.taxonomy.num_classes
            )
            if warning is not None:
                _console.print(f"[yellow]warning:[/] {warning}")
        if self.precise_bn is not None:
            summary["precise_bn"] = self.precise_bn
        if self.objective.alignment is not None:  # each group's distance at the end
            summary["alignment_drift"] = self.objective.alignment.drift()
        write_json_atomic(self.out / "metrics.json", summary)
