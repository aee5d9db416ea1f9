"""Decoding in worker processes: jobs in, fitted frames (or error records) out.

A job is one image or one video with the frame indices still to label. Workers read, check
and fit frames to the graph input (:mod:`inference_server.frames`) and put them on a bounded
queue, so decoding runs beside inference and never races ahead of it by more than the queue
holds. A corrupt or truncated image, a video that cannot be opened, or frames a truncated
video does not have, become error records; the run goes on.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inference_server.frames import fit_frame
from inference_server.metadata import ExportMetadata


@dataclass(frozen=True)
class FrameTask:
    """One frame to label: its stable id, where it comes from and its output key."""

    frame_id: str
    source: str
    key: str
    frame_index: int | None = None
    timestamp: float | None = None


@dataclass(frozen=True)
class DecodeJob:
    kind: str  # "image" | "video"
    path: str
    tasks: tuple[FrameTask, ...]  # for a video: sorted by frame index


@dataclass
class Decoded:
    """A decoded frame fitted to the graph, or the reason it could not be decoded."""

    task: FrameTask
    frame: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    original: np.ndarray | None = None
    error: str | None = None


JOB_DONE = "job-done"


def decode_image(path: str) -> np.ndarray:
    """RGB uint8; raises ValueError with the reason for an unreadable or truncated file."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image (corrupt or truncated)")
    if path.lower().endswith(".png") and not data[-12:].tobytes().endswith(b"IEND\xaeB`\x82"):
        raise ValueError("truncated PNG (no IEND chunk)")
    if path.lower().endswith((".jpg", ".jpeg")) and data[-2:].tobytes() != b"\xff\xd9":
        raise ValueError("truncated JPEG (no end-of-image marker)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _fitted(task: FrameTask, image: np.ndarray, metadata: ExportMetadata, keep: bool) -> Decoded:
    return Decoded(task, fit_frame(image, metadata), image.shape[:2], image if keep else None)


def _decode_video(job: DecodeJob, metadata: ExportMetadata, keep: bool, out: Any) -> None:
    capture = cv2.VideoCapture(job.path)
    if not capture.isOpened():
        for task in job.tasks:
            out.put(Decoded(task, error="cannot open the video (corrupt or unsupported)"))
        return
    pending = list(job.tasks)
    index = 0
    try:
        while pending:
            if not capture.grab():
                break
            if index == pending[0].frame_index:
                ok, frame = capture.retrieve()
                task = pending.pop(0)
                if ok and frame is not None:
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    out.put(_fitted(task, rgb, metadata, keep))
                else:
                    out.put(Decoded(task, error=f"frame {index} could not be decoded"))
            index += 1
    finally:
        capture.release()
    for task in pending:
        out.put(Decoded(task, error=f"the video ends at frame {index} (truncated or corrupt)"))


def decode_worker(jobs: Any, out: Any, metadata: ExportMetadata, keep_original: bool) -> None:
    """Worker process loop: decode jobs until the ``None`` sentinel."""
    cv2.setNumThreads(1)
    while (job := jobs.get()) is not None:
        if job.kind == "video":
            _decode_video(job, metadata, keep_original, out)
        else:
            for task in job.tasks:
                try:
                    out.put(_fitted(task, decode_image(job.path), metadata, keep_original))
                except (ValueError, OSError) as exc:
                    out.put(Decoded(task, error=str(exc)))
        out.put(JOB_DONE)


def start_workers(
    count: int, metadata: ExportMetadata, keep_original: bool, queue_size: int
) -> tuple[Any, Any, list[Any]]:
    """``count`` spawned decoder processes with their job and result queues."""
    context = mp.get_context("spawn")
    jobs: Any = context.Queue()
    results: Any = context.Queue(maxsize=queue_size)
    workers = [
        context.Process(
            target=decode_worker, args=(jobs, results, metadata, keep_original), daemon=True
        )
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    return jobs, results, workers
