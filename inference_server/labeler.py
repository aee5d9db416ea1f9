"""``segloop label``'s pipeline: plan frames, decode in worker processes, infer in batches on
one or more streams of a backend (:mod:`inference_server.streams`), write PNGs from a thread
pool, append manifest rows.

Per frame it writes ``label/<key>`` (trainIds), ``confidence/<key>`` and, when the export has
an ELN, ``reliability/<key>`` (uint8 PNGs at the frame's own size), optionally
``overlay/<key>``, then one manifest row (:mod:`inference_server.manifest`) with the source,
frame index and timestamp, output paths, engine hash, mean confidence, reliable fraction
(reliability >= 0.5) and class histogram, or the error that stopped the frame.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
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

from inference_server.backends.base import RELIABLE_LEVEL, LabelerBackend, LabelMaps
from inference_server.decode import JOB_DONE, Decoded, DecodeJob, FrameTask, start_workers
from inference_server.frames import restore_map
from inference_server.manifest import Manifest
from inference_server.metadata import ExportMetadata
from inference_server.sources import Source, sampled_indices
from inference_server.streams import open_streams
from segloop.atomic_files import write_json_atomic
from segloop.confidence_levels import mean_confidence
from segloop.imageio import colour_overlay, write_png
from segloop.params import LabelParams

MAPS = ("label", "confidence", "reliability")


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


class FrameWriter:
    """Restores maps to the frame size, writes PNGs atomically, computes the row."""

    def __init__(self, settings: LabelSettings, metadata: ExportMetadata) -> None:
        self.settings = settings
        self.metadata = metadata
        self.palette = np.array(metadata.palette, dtype=np.uint8)

    def write(self, item: Decoded, maps: dict[str, np.ndarray]) -> dict[str, Any]:
        task = item.task
        outputs: dict[str, str] = {}
        restored: dict[str, np.ndarray] = {}
        for name, values in maps.items():
            restored[name] = restore_map(values, item.size, self.metadata)
            path = self.settings.out / name / task.key
            write_png(path, restored[name], self.settings.png_compression, fast=True)
            outputs[name] = f"{name}/{task.key}"
        if self.settings.overlays and item.original is not None:
            path = self.settings.out / "overlay" / task.key
            overlay = colour_overlay(item.original, restored["label"], self.palette)
            write_png(path, overlay, 1, fast=True)
            outputs["overlay"] = f"overlay/{task.key}"
        histogram = np.bincount(restored["label"].ravel(), minlength=self.metadata.num_classes)
        reliability = restored.get("reliability")
        return {
            **_task_fields(task),
            "status": "ok",
            "height": item.size[0],
            "width": item.size[1],
            "outputs": outputs,
            "mean_confidence": round(mean_confidence(restored["confidence"]), 5),
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
    first_frame_s: float = 0.0  # start-up: until the first frame was written
    class_fractions: dict[str, float] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def steady_frames_per_s(self) -> float:
        """Throughput after the first frame (decoder start-up and first batch excluded)."""
        span = self.wall_s - self.first_frame_s
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0


class LabelRun:
    """One labeling run over planned frames on open backends, one per inference stream.

    Three stages overlap: the main thread takes decoded frames from the worker processes and
    forms batches; one inference thread per stream takes the next batch and runs its backend
    (which releases the GIL while the graph runs); writer threads encode the PNGs, append the
    manifest row and advance the progress bar. Bounded queues between the stages keep memory
    flat. Frames finish out of order across streams; the manifest is keyed by frame id.
    """

    def __init__(
        self,
        backends: Sequence[LabelerBackend],
        metadata: ExportMetadata,
        manifest: Manifest,
        settings: LabelSettings,
    ) -> None:
        if not backends:
            raise ValueError("a labeling run needs at least one backend")
        self.backends = list(backends)
        self.metadata = metadata
        self.manifest = manifest
        self.settings = settings
        self.writer = FrameWriter(settings, metadata)
        self.summary = LabelSummary()
        self.class_totals = np.zeros(metadata.num_classes, dtype=np.int64)
        self._lock = threading.Lock()
        self._start = 0.0
        self._progress: Progress | None = None
        self._bar: Any = None

    def _advance(self) -> None:
        if self._progress is not None:
            rate = self.summary.frames / max(time.perf_counter() - self._start, 1e-9)
            self._progress.update(self._bar, advance=1, rate=f"{rate:.1f}")

    def _record_error(self, item: Decoded) -> None:
        self.manifest.append(error_row(item))
        with self._lock:
            self.summary.errors += 1
            if len(self.summary.error_examples) < 10:
                self.summary.error_examples.append(f"{item.task.frame_id}: {item.error}")
        self._advance()

    def _write(self, item: Decoded, maps: dict[str, np.ndarray]) -> None:
        row = self.writer.write(item, maps)
        self.manifest.append(row)
        with self._lock:
            self.class_totals += np.asarray(row["class_histogram"], dtype=np.int64)
            self.summary.frames += 1
            if self.summary.frames == 1:
                self.summary.first_frame_s = time.perf_counter() - self._start
        self._advance()

    def _inference_loop(
        self, backend: LabelerBackend, batches: queue.Queue[list[Decoded] | None],
        pool: ThreadPoolExecutor, slots: threading.Semaphore, futures: list[Future[None]],
        failure: list[BaseException],
    ) -> None:  # fmt: skip
        while not failure:  # another stream failed: stop (nobody feeds this one any more)
            try:
                batch = batches.get(timeout=0.5)
            except queue.Empty:
                continue
            if batch is None:
                return
            frames = np.stack([item.frame for item in batch if item.frame is not None])
            maps: LabelMaps = backend.label(frames)
            for i, item in enumerate(batch):
                per_frame = {"label": maps.label[i], "confidence": maps.confidence[i]}
                if maps.reliability is not None:
                    per_frame["reliability"] = maps.reliability[i]
                slots.acquire()
                future = pool.submit(self._write, item, per_frame)
                future.add_done_callback(lambda _: slots.release())
                futures.append(future)

    def run(self, plan: Plan) -> LabelSummary:
        self.summary.skipped, self.summary.stale = plan.done, plan.stale
        self._start = time.perf_counter()
        with progress_bar() as progress:
            self._progress = progress
            self._bar = progress.add_task("labeling", total=plan.todo + len(plan.errors), rate="-")
            for item in plan.errors:
                self._record_error(item)
            if plan.jobs:
                self._run_jobs(plan)
            self._progress = None
        return self._finish(self._start)

    def _run_jobs(self, plan: Plan) -> None:
        size = self.settings.batch_size
        jobs, results, processes = start_workers(
            min(self.settings.decode_workers, len(plan.jobs)),
            self.metadata,
            self.settings.overlays,
            queue_size=4 * size,
        )
        for job in plan.jobs:
            jobs.put(job)
        for _ in processes:
            jobs.put(None)
        batches: queue.Queue[list[Decoded] | None] = queue.Queue(maxsize=len(self.backends) + 1)
        futures: list[Future[None]] = []
        failure: list[BaseException] = []
        with ThreadPoolExecutor(self.settings.write_workers) as pool:
            slots = threading.Semaphore(4 * size)

            def infer(backend: LabelerBackend) -> None:
                try:
                    self._inference_loop(backend, batches, pool, slots, futures, failure)
                except BaseException as exc:  # re-raised in the main thread below
                    failure.append(exc)

            streams = [
                threading.Thread(
                    target=infer, args=(backend,), name=f"segloop-inference-{i}", daemon=True
                )
                for i, backend in enumerate(self.backends)
            ]
            for stream in streams:
                stream.start()
            pending: dict[tuple[int, ...], list[Decoded]] = {}
            finished = 0
            try:
                while finished < len(plan.jobs) and not failure:
                    try:
                        item = results.get(timeout=1.0)
                    except queue.Empty:
                        if not any(p.is_alive() for p in processes):
                            raise RuntimeError("every decoder process exited early") from None
                        continue
                    if isinstance(item, str) and item == JOB_DONE:
                        finished += 1
                    elif item.error is not None or item.frame is None:
                        self._record_error(item)
                    else:
                        batch = pending.setdefault(item.frame.shape, [])
                        batch.append(item)
                        if len(batch) == size:
                            self._put(batches, pending.pop(item.frame.shape), failure)
                for batch in pending.values():
                    self._put(batches, batch, failure)
            finally:
                for _ in streams:
                    self._put(batches, None, failure)
                for stream in streams:
                    stream.join()
                for process in processes:
                    process.join(timeout=1.0)
                    if process.is_alive():
                        process.terminate()
            for future in futures:
                future.result()  # a failed write raises here
        if failure:
            raise failure[0]

    @staticmethod
    def _put(
        batches: queue.Queue[list[Decoded] | None],
        batch: list[Decoded] | None,
        failure: list[BaseException],
    ) -> None:
        """Hand a batch to the inference streams unless one has failed (then they stop)."""
        while not failure:
            try:
                batches.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def _finish(self, start: float) -> LabelSummary:
        self.summary.wall_s = time.perf_counter() - start
        totals = self.class_totals
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
    write_json_atomic(path, report)
    return path


def settings_from(params: LabelParams) -> LabelSettings:
    return LabelSettings(
        out=params.out,
        batch_size=params.batch_size,
        decode_workers=params.decode_workers,
        write_workers=params.write_workers,
        every=params.every,
        fps=params.fps,
        overlays=params.overlays,
        png_compression=params.png_compression,
    )


def label_sources(params: LabelParams, sources: list[Source]) -> tuple[LabelSummary, Path]:
    """Label ``sources`` with ``params.export_dir`` on ``params.backend`` into
    ``params.out`` (resuming); returns the summary and the path of ``summary.json``."""
    from inference_server.metadata import read_metadata

    metadata = read_metadata(params.export_dir)
    settings = settings_from(params)
    manifest = Manifest(params.out, metadata.engine_hash).open()
    try:
        plan = plan_frames(sources, manifest, settings)
        with open_streams(
            params.export_dir, params.backend, params.threads, params.streams, metadata
        ) as labelers:
            summary = LabelRun(labelers, metadata, manifest, settings).run(plan)
    finally:
        manifest.close()
    report = write_summary(
        params.out,
        summary,
        {
            "backend": params.backend,
            "engine_hash": metadata.engine_hash,
            "export_dir": str(params.export_dir),
        },
    )
    return summary, report
