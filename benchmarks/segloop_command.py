"""Run one ``segloop`` CLI command from a benchmark script, echoing it first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_segloop(*args: str, sets: list[str], cwd: Path | None = None) -> None:
    """``python -m segloop.cli ARGS --set S ...`` under this interpreter; raises on failure."""
    command = [sys.executable, "-m", "segloop.cli", *args]
    for assignment in sets:
        command += ["--set", assignment]
    print("+", " ".join(command), f"(in {cwd or Path.cwd()})", flush=True)
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
