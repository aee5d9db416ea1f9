"""``metadata.json``: what travels with every export directory, and how the runtime reads it.

The exporter writes it (``export.metadata``); the labeler, the server and the engine builder
read it through :func:`read_metadata`, so a graph is never run without knowing its classes,
input size and the hashes that make outputs traceable to the weights that produced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from segloop.atomic_files import write_json_atomic
from segloop.errors import SegloopError
from segloop.fingerprint import file_sha256

METADATA_FILE = "metadata.json"
# 2: confidence maps are levels of segloop.confidence_levels (1 wrote round(255 c)).
FORMAT_VERSION = 2


class GraphInfo(BaseModel):
    """One ONNX file: its name in the directory, its SHA-256, and its I/O tensor names."""

    model_config = ConfigDict(extra="forbid")

    file: str
    sha256: str
    inputs: list[str]
    outputs: list[str]


class ExportMetadata(BaseModel):
    """Everything a runtime needs besides the graphs themselves."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    taxonomy: str
    classes: list[str]
    palette: list[tuple[int, int, int]]
    # The labeler takes uint8 RGB NHWC frames and normalises inside the graph with these;
    # teacher.onnx and eln.onnx take the normalised float32 NCHW image.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]  # height, width the graphs were exported (and checked) at
    dynamic_size: bool
    size_multiple: int  # with dynamic_size, H and W must be multiples of this
    head: str
    ecoc_codebook: list[list[int]] | None
    has_eln: bool
    opset: int
    exporter: str
    weights_sha256: str
    graphs: dict[str, GraphInfo]
    parity: dict[str, Any]
    versions: dict[str, str]
    params: dict[str, Any]
    checkpoint: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def engine_hash(self) -> str:
        """Identifies the labeling engine: the labeler graph's hash (which covers the weights)."""
        return self.graphs["labeler"].sha256[:16]


def write_metadata(directory: Path, metadata: ExportMetadata) -> Path:
    path = directory / METADATA_FILE
    write_json_atomic(path, metadata.model_dump(mode="json"))
    return path


def read_metadata(directory: Path, verify: bool = True) -> ExportMetadata:
    """Read and validate an export directory's metadata; with ``verify``, check that every
    graph file exists and still has the recorded hash (a swapped graph is refused)."""
    path = directory / METADATA_FILE
    if not path.exists():
        raise SegloopError(
            f"{directory}: not an export directory (no {METADATA_FILE}); run 'segloop export' first"
        )
    try:
        metadata = ExportMetadata.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise SegloopError(
            f"{path}: invalid export metadata ({exc.error_count()} errors)"
        ) from None
    if metadata.format_version != FORMAT_VERSION:
        raise SegloopError(
            f"{path}: export format {metadata.format_version}, this segloop reads format "
            f"{FORMAT_VERSION} (format 2 changed how confidence maps are stored); export the "
            "checkpoint again with this version"
        )
    if verify:
        for name, graph in metadata.graphs.items():
            graph_path = directory / graph.file
            if not graph_path.exists():
                raise SegloopError(f"{graph_path}: {name} graph listed in metadata is missing")
            if file_sha256(graph_path) != graph.sha256:
                raise SegloopError(
                    f"{graph_path}: hash differs from metadata.json; the directory was modified "
                    "after export; export again"
                )
    return metadata
