"""What a training run depends on, as one hash: a checkpoint is resumed only by the run that
made it (torch-free; the trainer and the loop's tracking both use it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from segloop.params import Params

# train.* keys that do not change what training computes.
BOOKKEEPING = (
    "out_dir",
    "threads",
    "keep_host_memory",
    "device",
    "num_workers",
    "log_every",
    "checkpoint_every",
    "measure_pseudo_labels",
)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_path(digest: hashlib._Hash, path: Path) -> None:
    if path.is_file():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update(child.read_bytes())
    else:
        digest.update(b"<missing>")


def run_fingerprint(params: Params) -> str:
    """SHA-256 over the params that shape training (data, model, methods, train without
    bookkeeping) and the content of its inputs: the split files, the warm-start checkpoint
    and the pseudo-label folder."""
    train = params.train.model_dump(mode="json", exclude=set(BOOKKEEPING))
    tree = {
        "data": params.data.model_dump(mode="json"),
        "model": params.model.model_dump(mode="json"),
        # precise_bn acts on best.pt once training has ended: it never changes the steps.
        "methods": params.methods.model_dump(mode="json", exclude={"precise_bn"}),
        "train": train,
    }
    digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode())
    for name in ("labeled.txt", "unlabeled.txt", "val.txt"):
        _hash_path(digest, params.data.split.dir / name)
    for extra in (params.methods.init_from, params.methods.pseudo_labels):
        if extra is not None:
            _hash_path(digest, extra)
    return digest.hexdigest()
