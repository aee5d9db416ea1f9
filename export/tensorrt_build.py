"""Building the labeler's TensorRT engine (TensorRT 10/11 Python API), with an engine cache.

Written to the documented API and not run on the development machine (TensorRT cannot be
installed there; the tests that need it skip with that reason). The network is created
``STRONGLY_TYPED`` from an ONNX graph that already carries its precision
(:mod:`export.precision`), one optimisation profile covers the batch axis, and the builder's
timing cache is loaded from and saved to the cache directory so rebuilds are fast. Engines
are cached under a key of graph hash, precision, shape profile, TensorRT version and GPU
(:func:`inference_server.tensorrt_runtime.engine_key`).
"""

from __future__ import annotations

from pathlib import Path

from inference_server.tensorrt_runtime import (
    ShapeProfile,
    current_identity,
    engine_key,
    import_tensorrt,
    write_engine_sidecar,
)
from segloop.atomic_files import write_bytes_atomic
from segloop.errors import SegloopError
from segloop.fingerprint import file_sha256

TIMING_CACHE = "timing.cache"


def build_engine(
    onnx_path: Path,
    input_name: str,
    precision: str,
    profile: ShapeProfile,
    workspace_gib: float,
    cache_dir: Path,
) -> tuple[Path, bool]:
    """The cached engine for this graph/precision/profile on this machine, building it when
    absent. Returns ``(engine path, built now)``."""
    identity = current_identity()
    graph = file_sha256(onnx_path)
    key = engine_key(graph, precision, profile, identity)
    engine = cache_dir / f"{key}.plan"
    if engine.exists() and engine.with_suffix(".plan.json").exists():
        return engine, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    plan = _build(onnx_path, input_name, profile, workspace_gib, cache_dir / TIMING_CACHE)
    write_bytes_atomic(engine, plan)
    write_engine_sidecar(engine, identity, precision, profile, graph)
    return engine, True


def _build(
    onnx_path: Path, input_name: str, profile: ShapeProfile, workspace_gib: float, timing: Path
) -> bytes:
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SegloopError(f"{onnx_path}: TensorRT could not parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    shape = (profile.height, profile.width, 3)
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(
        input_name,
        (profile.min_batch, *shape),
        (profile.opt_batch, *shape),
        (profile.max_batch, *shape),
    )
    config.add_optimization_profile(optimisation)
    cache = config.create_timing_cache(timing.read_bytes() if timing.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SegloopError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    write_bytes_atomic(timing, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def install_engine(engine: Path, export_dir: Path, name: str = "labeler.plan") -> Path:
    """Copy a cached engine and its identity sidecar into the export directory. The old
    sidecar goes first and each file lands whole (temporary sibling, then rename), so a crash
    part-way leaves an engine without a sidecar, which the backend refuses with the command
    to rebuild, never a new engine read with an old engine's profile."""
    target = export_dir / name
    sidecar = target.with_suffix(".plan.json")
    sidecar.unlink(missing_ok=True)
    write_bytes_atomic(target, engine.read_bytes())
    write_bytes_atomic(sidecar, engine.with_suffix(".plan.json").read_bytes())
    return target
