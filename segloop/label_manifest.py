"""Reading a ``segloop label`` manifest (``manifest.jsonl``) — shared by the labeler, which
writes it (:mod:`inference_server.manifest`), and pseudo-label selection, which reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.jsonl"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every complete row of the manifest file at ``path`` (none when it is absent)."""
    return parse_rows(path.read_text()) if path.exists() else []


def parse_rows(text: str) -> list[dict[str, Any]]:
    """Every complete row of manifest text; a torn last line (a killed writer) or an
    unparsable line is skipped."""
    rows = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "frame_id" in row:
            rows.append(row)
    return rows
