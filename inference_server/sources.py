"""What ``segloop label`` labels: image folders, globs, list files and videos, expanded into
sources with stable frame ids and output keys.

- A folder contributes every image below it (recursively); keys are paths relative to it.
- A glob (``'footage/**/*.jpg'``) contributes its matches; keys are relative to the glob's
  literal prefix folder.
- A list file (``.txt``/``.lst``, one path a line, ``#`` comments) contributes its entries,
  relative paths resolved against ``root`` (default: the list file's folder); keys are the
  entries as written.
- A video (mp4/avi/mkv/mov) contributes sampled frames; keys are
  ``<video key without suffix>/<frame index, 6 digits>.png``.

Every key ends in ``.png`` (the maps are PNGs whatever the source format). Two inputs that
map to the same key are refused, so no output is silently overwritten.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segloop.errors import SegloopError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov"})
LIST_SUFFIXES = frozenset({".txt", ".lst"})


@dataclass(frozen=True)
class Source:
    """One image or one video, with the key its outputs are written under."""

    path: Path
    key: str
    kind: Literal["image", "video"]

    @property
    def frame_key_stem(self) -> str:
        return self.key.removesuffix(".png")


def png_key(relative: str) -> str:
    return str(Path(relative).with_suffix(".png").as_posix())


def _source(path: Path, relative: str) -> Source:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return Source(path, png_key(relative), "video")
    return Source(path, png_key(relative), "image")


def _media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _from_folder(folder: Path) -> list[Source]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _media(p))
    return [_source(p, p.relative_to(folder).as_posix()) for p in files]


def _from_glob(pattern: str) -> list[Source]:
    literal: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        literal.append(part)
    base = Path(*literal) if literal else Path(".")
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
    files = [p for p in matches if p.is_file() and _media(p)]
    return [_source(p, p.relative_to(base).as_posix()) for p in files]


def _from_list(list_file: Path, root: Path | None) -> list[Source]:
    base = root or list_file.parent
    sources = []
    for number, raw in enumerate(list_file.read_text().splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        if not _media(path):
            raise SegloopError(f"{list_file}:{number}: {entry!r} is not an image or video file")
        key = Path(entry).name if Path(entry).is_absolute() else entry
        sources.append(_source(path, key))
    return sources


def expand_inputs(inputs: list[str], root: Path | None = None) -> list[Source]:
    """Every source named by ``inputs``, in order; clear errors for inputs that name nothing."""
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if glob.has_magic(item):
            found = _from_glob(item)
            if not found:
                raise SegloopError(f"{item}: the pattern matches no image or video")
        elif path.is_dir():
            found = _from_folder(path)
            if not found:
                raise SegloopError(f"{item}: the folder holds no image or video")
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            found = _from_list(path, root)
        elif path.is_file() and _media(path):
            found = [_source(path, path.name)]
        elif path.exists():
            raise SegloopError(f"{item}: not an image, a video, a folder or a .txt list")
        else:
            raise SegloopError(f"{item}: no such file or folder")
        sources.extend(found)
    seen: dict[str, Path] = {}
    for source in sources:
        if source.key in seen and seen[source.key] != source.path:
            raise SegloopError(
                f"{seen[source.key]} and {source.path} would both write outputs as "
                f"{source.key!r}; label them in separate runs (different --out)"
            )
        seen[source.key] = source.path
    unique = {s.key: s for s in sources}
    return list(unique.values())


def sampled_indices(frame_count: int, video_fps: float, every: int, fps: float | None) -> list[int]:
    """Frame indices kept from a video of ``frame_count`` frames: every ``every``-th, or with
    ``fps`` the frame nearest to each tick ``k / fps`` seconds (never above the video's rate)."""
    if fps is None or video_fps <= 0:
        return list(range(0, frame_count, every))
    step = max(video_fps / fps, 1.0)
    indices: list[int] = []
    tick = 0
    while (index := round(tick * step)) < frame_count:
        if not indices or index != indices[-1]:
            indices.append(index)
        tick += 1
    return indices
