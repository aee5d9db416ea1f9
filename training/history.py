"""Reading ``history.jsonl`` back: the trainer appends one record per logged interval of
training steps (per-step means of every term since the previous record) and one per
validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def training_intervals(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(steps in the interval, record)`` for every training record, in order; validation
    records are skipped; nothing when the file does not exist."""
    previous = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        if "loss" not in record:  # a validation record
            continue
        yield record["step"] - previous, record
        previous = record["step"]
