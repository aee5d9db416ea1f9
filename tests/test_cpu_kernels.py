import os
import subprocess
import sys

from training.cpu_kernels import torch_cpu_kernels


def test_torch_cpu_kernels_lists_only_the_isa_caps_that_are_set() -> None:
    environ = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "HOME": "/x"}
    assert torch_cpu_kernels(environ)["isa_caps"] == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }
    assert torch_cpu_kernels({})["isa_caps"] == {}


def test_torch_cpu_kernels_records_the_capability_a_cap_selects() -> None:
    """ATEN_CPU_CAPABILITY=default makes torch dispatch to its scalar kernels, on any CPU."""
    code = "from training.cpu_kernels import torch_cpu_kernels; print(torch_cpu_kernels())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "'capability': 'DEFAULT'" in out
