"""Write the embedded dataset in the Cityscapes folder layout.

``leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png`` and
``gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelTrainIds.png``, plus
``conditions.csv`` (image path relative to the root, condition) and ``synth.json`` (the
params that made it; under ``rendered_with``, the versions that drew it). Frames are rendered
in a process pool; each file is written to a temporary name and renamed, so an interrupted run
never leaves a half-written PNG.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.progress import Progress

from segloop.atomic_files import write_csv_atomic, write_json_atomic
from segloop.imageio import write_png
from segloop.params import SynthParams
from segloop.run_environment import run_environment
from segloop.synth.scene import render_frame

CITIES = (
    "aachen",
    "bochum",
    "cologne",
    "dresden",
    "erfurt",
    "frankfurt",
    "goettingen",
    "hamburg",
    "jena",
    "krefeld",
    "leipzig",
    "mainz",
    "nuremberg",
    "potsdam",
)
SPLIT_SEED_OFFSET = {"train": 0, "val": 10_000_000}


def frame_stem(city: str, index: int) -> str:
    return f"{city}_{index:06d}_000019"


def _conditions(mix: dict[str, float], count: int, rng: np.random.Generator) -> list[str]:
    names = sorted(mix)
    weights = np.asarray([mix[n] for n in names], dtype=np.float64)
    return [names[i] for i in rng.choice(len(names), size=count, p=weights / weights.sum())]


def _render_and_write(job: tuple[int, int, int, str, str, str]) -> None:
    seed, height, width, condition, image_path, label_path = job
    frame = render_frame(seed, height, width, condition)
    write_png(Path(image_path), frame.image)
    write_png(Path(label_path), frame.label)


def _rendered_with(root: Path, rendered: bool) -> object:
    """The environment that rendered the frames (OpenCV and numpy draw them): this run's if it
    rendered any, else the one the existing ``synth.json`` recorded (None if it has none)."""
    if rendered:
        return run_environment()
    try:
        return json.loads((root / "synth.json").read_text()).get("rendered_with")
    except (OSError, ValueError, AttributeError):
        return None


def write_dataset(root: Path, params: SynthParams) -> dict[str, int]:
    """Render ``params.train_frames`` + ``params.val_frames`` frames under ``root``.

    Deterministic in ``params.seed``: the same params write byte-identical files. Existing
    complete files are kept, so a rerun after an interruption only renders what is missing.
    """
    rows: list[tuple[str, str]] = []
    jobs: list[tuple[int, int, int, str, str, str]] = []
    for split, count, mix in (
        ("train", params.train_frames, params.train_conditions),
        ("val", params.val_frames, params.val_conditions),
    ):
        rng = np.random.default_rng([params.seed, SPLIT_SEED_OFFSET[split]])
        conditions = _conditions(mix, count, rng)
        offset = 0 if split == "train" else (params.train_frames // params.frames_per_city + 1)
        for i, condition in enumerate(conditions):
            city = CITIES[(offset + i // params.frames_per_city) % len(CITIES)]
            stem = frame_stem(city, i)
            image = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            label = root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png"
            rows.append((image.relative_to(root).as_posix(), condition))
            if image.exists() and label.exists():
                continue
            image.parent.mkdir(parents=True, exist_ok=True)
            label.parent.mkdir(parents=True, exist_ok=True)
            seed = params.seed * 1_000_003 + SPLIT_SEED_OFFSET[split] + i
            jobs.append((seed, params.height, params.width, condition, str(image), str(label)))

    with Progress(transient=True) as progress:
        task = progress.add_task("rendering frames", total=len(jobs))
        if params.workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(params.workers) as pool:
                for _ in pool.map(_render_and_write, jobs, chunksize=16):
                    progress.advance(task)
        else:
            for job in jobs:
                _render_and_write(job)
                progress.advance(task)

    write_csv_atomic(root / "conditions.csv", ["image", "condition"], rows)
    record = {**params.model_dump(mode="json"), "rendered_with": _rendered_with(root, bool(jobs))}
    write_json_atomic(root / "synth.json", record)
    return {"train": params.train_frames, "val": params.val_frames, "rendered": len(jobs)}
