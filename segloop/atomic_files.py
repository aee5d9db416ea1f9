"""Whole-file writes that a crash cannot tear: the bytes go to a hidden temporary file beside
the target, which is then renamed over it (``os.replace`` is atomic on POSIX and Windows
within one file system). A reader, or a rerun after a kill, sees the old file or the new one,
never half of one. There is no fsync: this guards against a killed process, not a power cut
(the labeling manifest, which must survive both, syncs its own rewrite). Standard library
only: the torch-free runtime uses it too."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def temporary_sibling(path: Path) -> Path:
    """The hidden temporary name that :func:`write_bytes_atomic` renames from."""
    return path.with_name(f".{path.name}.tmp")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename; creates the parent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` as UTF-8, written by :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``header`` and ``rows`` as CSV (the csv module's dialect), written by
    :func:`write_bytes_atomic`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_json_atomic(path: Path, value: Any) -> None:
    """``value`` as indented JSON with a final newline, written by :func:`write_bytes_atomic`."""
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")
