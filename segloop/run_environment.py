"""What a run's figures depend on besides its params: the interpreter, the CPU and the
versions of the packages that render the embedded data or compute the model.

``constraints.txt`` pins torch only, so two installs of the same commit can differ in numpy or
OpenCV (which draws and blurs the embedded dataset) or albumentations (the strong view). A
training run's ``metrics.json`` and the embedded dataset's ``synth.json`` record this, so that
two figures can be told apart by what made them (docs/RESULTS.md: a retrained warm model of
the same seed and command reached 53.7 where an earlier install's reached 50.6, and which
versions made the earlier one was not recorded).
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

RESULT_PACKAGES = (
    "torch",
    "numpy",
    "opencv-python-headless",
    "albumentations",
    "onnx",
    "onnxruntime",
)
CPUINFO = Path("/proc/cpuinfo")


def package_versions(names: tuple[str, ...] = RESULT_PACKAGES) -> dict[str, str | None]:
    """Installed distribution version of each name; None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The first ``model name`` of ``/proc/cpuinfo`` (Linux); else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_environment() -> dict[str, object]:
    """Python version, platform, CPU model and :data:`RESULT_PACKAGES` versions."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "packages": package_versions(),
    }
