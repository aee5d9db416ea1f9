"""What a run's figures depend on besides its params: the interpreter, the CPU and the
versions of the packages that render the embedded data or compute the model (torch's CPU
kernels: ``training/cpu_kernels.py``, since this package never imports torch).

A training run's ``metrics.json`` and the embedded dataset's ``synth.json`` record this, so that
two figures can be told apart by what made them (docs/RESULTS.md: a warm model retrained with
the same seed and command on a Zen 5 VM reached 53.7 where one on a Zen 3 VM had reached 50.6,
and nothing recorded which CPU or versions made the earlier one).
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
    """The first CPU of ``/proc/cpuinfo`` (Linux) as ``model name (family F, model M)``: a VM's
    model name can be as bare as "AMD EPYC", and the family tells Zen 3 (25) from Zen 5 (26),
    whose AVX-512 kernels round differently. Else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                break  # the first processor's block ends here
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def run_environment() -> dict[str, object]:
    """Python version, platform, CPU model and :data:`RESULT_PACKAGES` versions."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "packages": package_versions(),
    }
