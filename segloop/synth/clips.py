"""Short driving clips for video labeling on the embedded default (``clips/clip_NNN.mp4``).

Each clip is one rendered street scene seen from a camera driving forward: ego-motion is
approximated by a steady zoom toward the road's vanishing region (frame t crops a window that
shrinks by ``1 - zoom * t / T`` around the point at 45% of the height, and resizes it back),
with the rendered frame's own condition. It is footage to exercise the video path (decoding,
sampling by stride or rate, frame indices), not a benchmark: the clips have no labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from segloop.params import CONDITIONS, SynthParams
from segloop.synth.scene import render_frame

CLIP_SEED_OFFSET = 20_000_000
ZOOM = 0.35  # the last frame shows the central 65% of the first


def clip_frames(scene: np.ndarray, count: int) -> list[np.ndarray]:
    height, width = scene.shape[:2]
    centre_y, centre_x = 0.45 * height, 0.5 * width
    frames = []
    for t in range(count):
        scale = 1.0 - ZOOM * t / max(count - 1, 1)
        h, w = height * scale, width * scale
        y0 = min(max(centre_y - h * 0.45, 0.0), height - h)
        x0 = min(max(centre_x - w / 2, 0.0), width - w)
        matrix = np.array([[scale, 0.0, x0], [0.0, scale, y0]], dtype=np.float64)
        frames.append(
            cv2.warpAffine(
                scene, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            )
        )
    return frames


def write_clips(root: Path, params: SynthParams) -> list[Path]:
    """Write ``params.clips`` mp4 clips (mp4v) under ``root/clips``; existing ones are kept."""
    folder = root / "clips"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(params.clips):
        path = folder / f"clip_{index:03d}.mp4"
        paths.append(path)
        if path.exists():
            continue
        seed = params.seed * 1_000_003 + CLIP_SEED_OFFSET + index
        condition = CONDITIONS[index % len(CONDITIONS)]
        scene = render_frame(seed, params.height, params.width, condition).image
        tmp = path.with_name(f".{path.stem}.tmp.mp4")
        writer = cv2.VideoWriter(
            str(tmp),
            cv2.VideoWriter.fourcc(*"mp4v"),
            params.clip_fps,
            (params.width, params.height),
        )
        if not writer.isOpened():
            raise OSError(f"{tmp}: OpenCV cannot write mp4 video here")
        for frame in clip_frames(scene, params.clip_frames):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp, path)
    return paths
