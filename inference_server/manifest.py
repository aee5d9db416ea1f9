"""The labeling manifest: ``manifest.jsonl``, one JSON row per frame, appended as each frame
finishes.

A row is appended only after the frame's PNGs are in place (each written atomically), and
each append is flushed, so a run killed at any moment (SIGKILL included) keeps every row it
reported; at worst the last line is torn, and :meth:`Manifest.open` drops it. Resuming skips
frames whose row carries the current engine hash; rows made by another engine are stale: they
are removed from the manifest (rewritten atomically) and their frames labeled again, so the
manifest never holds two rows for one frame.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from threading import Lock
from typing import IO, Any

from segloop.atomic_files import temporary_sibling
from segloop.label_manifest import MANIFEST_FILE, parse_rows


class Manifest:
    """Append-only rows for one output folder and one engine."""

    def __init__(self, out: Path, engine_hash: str) -> None:
        self.path = out / MANIFEST_FILE
        self.engine_hash = engine_hash
        self.done: dict[str, dict[str, Any]] = {}
        self.stale = 0
        self._handle: IO[str] | None = None
        self._lock = Lock()

    def load(self) -> list[dict[str, Any]]:
        """Read what is done with this engine and count stale frames (read-only); returns
        the rows to keep."""
        return self._keep(parse_rows(self._text()))

    def _text(self) -> str:
        return self.path.read_text() if self.path.exists() else ""

    def _keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        latest = {r["frame_id"]: r for r in rows if r.get("engine_hash") == self.engine_hash}
        self.stale = len({r["frame_id"] for r in rows} - set(latest))
        self.done = latest
        return list(latest.values())

    def open(self) -> Manifest:
        """Load, drop stale and torn rows (rewriting the file when it holds any), and open
        for appending."""
        on_disk = self._text()
        keep = self._keep(parse_rows(on_disk))
        if on_disk != "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep):
            self._rewrite(keep)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a")
        return self

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(self.path)
        with tmp.open("w") as handle:
            handle.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict[str, Any]) -> None:
        assert self._handle is not None, "open() the manifest first"
        row = {**row, "engine_hash": self.engine_hash}
        with self._lock:
            self._handle.write(json.dumps(row, sort_keys=True) + "\n")
            self._handle.flush()
            self.done[row["frame_id"]] = row

    def close(self) -> None:
        if self._handle is not None:
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
