"""``segloop label``'s pipeline: plan frames, decode in worker processes, infer in batches on
one backend, write PNGs from a thread pool, append manifest rows.

Per frame it writes ``label/<key>`` (trainIds), ``confidence/<key>`` and, when the export has
an ELN, ``reliability/<key>`` (uint8 PNGs at the frame's own size), optionally
``overlay/<key>``, then one manifest row (:mod:`inference_server.manifest`) with the source,
frame index and timestamp, output paths, engine hash, mean confidence, reliable fraction
(reliability >= 0.5) and class histogram, or the error that stopped the frame.
"""

from __future__ import annotations

import json
import queue
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from inference_server.backends import LabelerBackend, LabelMaps
from inference_server.decode import JOB_DONE, Decoded, DecodeJob, FrameTask, start_workers
from inference_server.frames import restore_map
from inference_server.manifest import Manifest
from inference_server.metadata import ExportMetadata
from inference_server.sources import Source, sampled_indices
from segloop.imageio import write_png

MAPS = ("label", "confidence", "reliability")
RELIABLE_LEVEL = 128  # reliability >= 0.5 after the graph's round(255 * p)


@dataclass
class LabelSettings:
    out: Path
    batch_size: int = 8
    decode_workers: int = 2
    write_workers: int = 2
    every: int = 1
    fps: float | None = None
    overlays: bool = False
    png_compression: int = 1


@dataclass
class Plan:
    """Frames to label, what the manifest says is done, and unopenable videos."""

    jobs: list[DecodeJob]
    todo: int
    done: int
    stale: int
    errors: list[Decoded] = field(default_factory=list)


def video_tasks(
    source: Source, every: int, fps: float | None
) -> tuple[list[FrameTask], str | None]:
    capture = cv2.VideoCapture(str(source.path))
    if not capture.isOpened():
        return [], "cannot open the video (corrupt or unsupported)"
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    video_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    capture.release()
    if count <= 0:
        return [], "the video reports no frames (corrupt or unsupported)"
    stem = source.frame_key_stem
    return [
        FrameTask(
            frame_id=f"{source.path.as_posix()}#{i}",
            source=source.path.as_posix(),
            key=f"{stem}/{i:06d}.png",
            frame_index=i,
            timestamp=i / video_fps if video_fps > 0 else None,
        )
        for i in sampled_indices(count, video_fps, every, fps)
    ], None


def plan_frames(sources: list[Source], manifest: Manifest, settings: LabelSettings) -> Plan:
    jobs: list[DecodeJob] = []
    errors: list[Decoded] = []
    todo = done = 0
    for source in sources:
        if source.kind == "image":
            tasks = [FrameTask(source.path.as_posix(), source.path.as_posix(), source.key)]
        else:
            tasks, error = video_tasks(source, settings.every, settings.fps)
            if error is not None:
                task = FrameTask(f"{source.path.as_posix()}#", source.path.as_posix(), source.key)
                if task.frame_id not in manifest.done:
                    errors.append(Decoded(task, error=error))
                continue
        remaining = tuple(t for t in tasks if t.frame_id not in manifest.done)
        done += len(tasks) - len(remaining)
        todo += len(remaining)
        if remaining:
            jobs.append(DecodeJob(source.kind, source.path.as_posix(), remaining))
    return Plan(jobs, todo, done, manifest.stale, errors)


def _overlay(frame: np.ndarray, label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colours = palette[np.minimum(label, len(palette) - 1)]
    return cv2.addWeighted(frame, 0.5, colours, 0.5, 0.0)


class FrameWriter:
    """Restores maps to the frame size, writes PNGs atomically, computes the row."""

    def __init__(self, settings: LabelSettings, metadata: ExportMetadata) -> None:
        self.settings = settings
        self.metadata = metadata
        self.palette = np.array([*metadata.palette, (0, 0, 0)], dtype=np.uint8)
        self.class_totals = np.zeros(metadata.num_classes, dtype=np.int64)

    def write(self, item: Decoded, maps: dict[str, np.ndarray]) -> dict[str, Any]:
        task = item.task
        outputs: dict[str, str] = {}
        restored: dict[str, np.ndarray] = {}
        for name, values in maps.items():
            restored[name] = restore_map(values, item.size, self.metadata)
            path = self.settings.out / name / task.key
            write_png(path, restored[name], self.settings.png_compression)
            outputs[name] = f"{name}/{task.key}"
        if self.settings.overlays and item.original is not None:
            path = self.settings.out / "overlay" / task.key
            write_png(path, _overlay(item.original, restored["label"], self.palette), 1)
            outputs["overlay"] = f"overlay/{task.key}"
        histogram = np.bincount(restored["label"].ravel(), minlength=self.metadata.num_classes)
        self.class_totals += histogram[: self.metadata.num_classes]
        reliability = restored.get("reliability")
        return {
            **_task_fields(task),
            "status": "ok",
            "height": item.size[0],
            "width": item.size[1],
            "outputs": outputs,
            "mean_confidence": round(float(restored["confidence"].mean()) / 255.0, 5),
            "reliable_fraction": None
            if reliability is None
            else round(float((reliability >= RELIABLE_LEVEL).mean()), 5),
            "class_histogram": histogram[: self.metadata.num_classes].tolist(),
        }


def _task_fields(task: FrameTask) -> dict[str, Any]:
    return {
        "frame_id": task.frame_id,
        "source": task.source,
        "frame_index": task.frame_index,
        "timestamp": task.timestamp,
        "key": task.key,
    }


def error_row(item: Decoded) -> dict[str, Any]:
    return {**_task_fields(item.task), "status": "error", "error": item.error}


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} frames/s"),
        TimeRemainingColumn(),
    )


@dataclass
class LabelSummary:
    frames: int = 0
    errors: int = 0
    skipped: int = 0
    stale: int = 0
    wall_s: float = 0.0
    class_fractions: dict[str, float] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class LabelRun:
    """One labeling run over planned frames on an open backend."""

    def __init__(
        self,
        backend: LabelerBackend,
        metadata: ExportMetadata,
        manifest: Manifest,
        settings: LabelSettings,
    ) -> None:
        self.backend = backend
        self.metadata = metadata
        self.manifest = manifest
        self.settings = settings
        self.writer = FrameWriter(settings, metadata)
        self.summary = LabelSummary()
        self.pending: deque[Future[dict[str, Any]]] = deque()

    def _record_error(self, item: Decoded) -> None:
        self.manifest.append(error_row(item))
        self.summary.errors += 1
        if len(self.summary.error_examples) < 10:
            self.summary.error_examples.append(f"{item.task.frame_id}: {item.error}")

    def _infer(self, batch: list[Decoded], pool: ThreadPoolExecutor) -> None:
        frames = np.stack([item.frame for item in batch if item.frame is not None])
        maps: LabelMaps = self.backend.label(frames)
        for i, item in enumerate(batch):
            per_frame = {"label": maps.label[i], "confidence": maps.confidence[i]}
            if maps.reliability is not None:
                per_frame["reliability"] = maps.reliability[i]
            self.pending.append(pool.submit(self.writer.write, item, per_frame))

    def _drain(self, limit: int, progress: Progress, bar: Any, start: float) -> None:
        while len(self.pending) > limit:
            row = self.pending.popleft().result()
            self.manifest.append(row)
            self.summary.frames += 1
            rate = self.summary.frames / max(time.perf_counter() - start, 1e-9)
            progress.update(bar, advance=1, rate=f"{rate:.1f}")

    def run(self, plan: Plan) -> LabelSummary:
        self.summary.skipped, self.summary.stale = plan.done, plan.stale
        for item in plan.errors:
            self._record_error(item)
        start = time.perf_counter()
        if not plan.jobs:
            return self._finish(start)
        workers = min(self.settings.decode_workers, len(plan.jobs))
        queue_size = 4 * self.settings.batch_size
        jobs, results, processes = start_workers(
            workers, self.metadata, self.settings.overlays, queue_size
        )
        for job in plan.jobs:
            jobs.put(job)
        for _ in processes:
            jobs.put(None)
        batches: dict[tuple[int, ...], list[Decoded]] = {}
        finished = 0
        try:
            with (
                progress_bar() as progress,
                ThreadPoolExecutor(self.settings.write_workers) as pool,
            ):
                bar = progress.add_task("labeling", total=plan.todo, rate="-")
                while finished < len(plan.jobs):
                    try:
                        item = results.get(timeout=5.0)
                    except queue.Empty:
                        if not any(p.is_alive() for p in processes):
                            raise RuntimeError("every decoder process exited early") from None
                        continue
                    if isinstance(item, str) and item == JOB_DONE:
                        finished += 1
                        continue
                    if item.error is not None or item.frame is None:
                        self._record_error(item)
                        progress.update(bar, advance=1)
                        continue
                    batch = batches.setdefault(item.frame.shape, [])
                    batch.append(item)
                    if len(batch) == self.settings.batch_size:
                        self._infer(batches.pop(item.frame.shape), pool)
                    self._drain(2 * self.settings.batch_size, progress, bar, start)
                for batch in batches.values():
                    self._infer(batch, pool)
                self._drain(0, progress, bar, start)
        finally:
            for process in processes:
                process.join(timeout=1.0)
                if process.is_alive():
                    process.terminate()
        return self._finish(start)

    def _finish(self, start: float) -> LabelSummary:
        self.summary.wall_s = time.perf_counter() - start
        totals = self.writer.class_totals
        share = totals / max(int(totals.sum()), 1)
        self.summary.class_fractions = {
            name: round(float(share[j]), 5) for j, name in enumerate(self.metadata.classes)
        }
        return self.summary


def write_summary(out: Path, summary: LabelSummary, extra: dict[str, Any]) -> Path:
    path = out / "summary.json"
    report = {
        "frames_labeled": summary.frames,
        "errors": summary.errors,
        "skipped_done": summary.skipped,
        "stale_relabeled": summary.stale,
        "wall_s": round(summary.wall_s, 3),
        "frames_per_s": round(summary.frames_per_s, 3),
        "class_fractions_this_run": summary.class_fractions,
        "error_examples": summary.error_examples,
        **extra,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
