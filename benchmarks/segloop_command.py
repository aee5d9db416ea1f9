"""Run commands from a benchmark script, echoing each first and streaming its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_command(command: list[str], cwd: Path | None = None) -> None:
    """Run ``command`` (unbuffered Python output, so logs stream); raises on failure."""
    print("+", " ".join(command), f"(in {cwd or Path.cwd()})", flush=True)
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def run_segloop(*args: str, sets: list[str], cwd: Path | None = None) -> None:
    """``python -m segloop.cli ARGS --set S ...`` under this interpreter."""
    command = [sys.executable, "-m", "segloop.cli", *args]
    for assignment in sets:
        command += ["--set", assignment]
    run_command(command, cwd)
