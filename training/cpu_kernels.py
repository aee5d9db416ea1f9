"""The instruction set of torch's CPU kernels, which a training run records beside
:func:`segloop.run_environment.run_environment` (docs/RESULTS.md: the same run on AVX-512 and on
AVX2 kernels ends at another mIoU)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

KERNEL_ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that cap the instruction set of torch's CPU kernels: ATen's own
vectorised kernels, oneDNN's (convolutions) and MKL's (matrix products)."""


def torch_cpu_kernels(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """The instruction set torch's CPU kernels dispatch to (``AVX512``, ``AVX2``, ...) and the
    :data:`KERNEL_ISA_VARIABLES` that are set. The same training on the same data rounds
    differently under AVX-512 and AVX2 kernels and ends at another mIoU; with all three set to
    AVX2 a Zen 5 VM repeated a Zen 3 VM's figures to the digits recorded (docs/RESULTS.md, the
    main job)."""
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "isa_caps": {name: environ[name] for name in KERNEL_ISA_VARIABLES if name in environ},
    }
