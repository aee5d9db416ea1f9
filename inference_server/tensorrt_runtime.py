"""What both TensorRT paths share (torch-free): importing TensorRT and the CUDA runtime
bindings with a clear error when absent, the identity of this machine (TensorRT version and
GPU) and the engine-cache key.

An engine is only valid for the TensorRT version and GPU model that built it, so every engine
carries a sidecar ``<engine>.json`` with that identity, and loading one built elsewhere is
refused with a message saying what differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segloop.atomic_files import write_json_atomic
from segloop.errors import SegloopError

TRT_HINT = (
    "install the TensorRT extra: pip install 'segloop[trt]' (tensorrt and cuda-python; needs an "
    "NVIDIA GPU and driver)"
)


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise SegloopError(
            f"the 'trt' engine/backend needs TensorRT, which is not installed; {TRT_HINT}"
        ) from None
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's runtime bindings (``cuda.bindings.runtime`` from 12.6, ``cuda.cudart``
    before)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise SegloopError(f"the 'trt' backend needs cuda-python; {TRT_HINT}") from None
    return cudart


def cuda_check(result: Any) -> Any:
    """Unwrap cuda-python's ``(error, value...)`` tuples, raising on a CUDA error."""
    if not isinstance(result, tuple):
        result = (result,)
    error, values = result[0], result[1:]
    if int(error) != 0:
        raise RuntimeError(f"CUDA error {error}")
    return values[0] if len(values) == 1 else values or None


@dataclass(frozen=True)
class EngineIdentity:
    """What an engine is bound to."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def current_identity(device: int = 0) -> EngineIdentity:
    trt = import_tensorrt()
    cudart = import_cudart()
    props = cuda_check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return EngineIdentity(trt.__version__, name.strip("\x00 "), f"{props.major}.{props.minor}")


@dataclass(frozen=True)
class ShapeProfile:
    """The optimisation profile over the batch axis at one frame size."""

    min_batch: int
    opt_batch: int
    max_batch: int
    height: int
    width: int


def engine_key(
    graph_sha256: str, precision: str, profile: ShapeProfile, identity: EngineIdentity
) -> str:
    """Cache key: the graph, the precision, the shape profile, the TensorRT version and GPU."""
    blob = json.dumps(
        {
            "graph": graph_sha256,
            "precision": precision,
            "profile": asdict(profile),
            "identity": asdict(identity),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def write_engine_sidecar(
    engine: Path, identity: EngineIdentity, precision: str, profile: ShapeProfile, graph: str
) -> None:
    sidecar = {
        "identity": asdict(identity),
        "precision": precision,
        "profile": asdict(profile),
        "graph_sha256": graph,
    }
    write_json_atomic(engine.with_suffix(engine.suffix + ".json"), sidecar)


def read_engine_sidecar(engine: Path) -> dict[str, Any]:
    path = engine.with_suffix(engine.suffix + ".json")
    if not engine.exists() or not path.exists():
        raise SegloopError(
            f"{engine}: no TensorRT engine (with its .json) here; build one with "
            "'segloop export --engine trt'"
        )
    sidecar: dict[str, Any] = json.loads(path.read_text())
    return sidecar


def check_identity(engine: Path, built: dict[str, Any], here: EngineIdentity) -> None:
    """Refuse an engine built for another TensorRT version or GPU model."""
    differences = [
        f"{field} {built.get(field)!r} (built) vs {value!r} (here)"
        for field, value in asdict(here).items()
        if built.get(field) != value
    ]
    if differences:
        raise SegloopError(
            f"{engine}: built for another machine: {'; '.join(differences)}. TensorRT engines "
            "are not portable; rebuild it here with 'segloop export --engine trt'"
        )
