"""Labeling throughput, three ways in one process (docs/BENCHMARKS.md):

1. PyTorch eager teacher + ELN, the naive way: normalise, model, ``F.softmax``, max/argmax,
   ELN, uint8 maps copied to numpy;
2. the fused ``labeler.onnx`` on an ONNX Runtime backend, frames already in memory (model
   only), as one session with ``--threads`` intra-op threads and, for each ``--streams``
   count above one, as that many sessions labeling batches at once with the threads split
   between them (:mod:`inference_server.streams`); the fastest is the model-only rate;
3. the full ``segloop label`` pipeline over PNG files (decoder processes, batched inference
   on the streams, PNG writer threads, manifest), once per ``--streams`` count.

    python benchmarks/labeling.py --checkpoint runs/baseline/best.pt --export runs/export \
        --frames data/embedded/leftImg8bit/val --count 256 --batch 8 --threads 2

Frames/s are measured after ``--warmup`` batches. The pipeline runs write into
``--work-dir`` (default: a temporary folder removed after every measurement is taken), so no
files are deleted while a run is measured: on an ext4 file system without a journal (the dev
VMs' root), creating files in the 60-300 s after many were deleted is slower, because the
inode allocator skips inodes deleted that recently (``recently_deleted`` in
``fs/ext4/ialloc.c``; ``perf record -a`` put about 7% of a pipeline run's samples in it and
the lookups it makes). Space repeated benchmarks at least 5 minutes apart, or delete their
outputs only after the last.

``--device cuda`` also times eager FP16 (autocast) and uses ``--backend`` (e.g. ort-cuda) for
the exported graph. Each row also reports the CPU time it spent per frame
(every thread, and the decoder processes): on a machine whose cores the model already fills,
the pipeline's rate cannot exceed the model-only rate times model CPU / pipeline CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from inference_server.backends import LabelerBackend, open_labeler
from inference_server.decode import decode_image
from inference_server.frames import fit_frame
from inference_server.labeler import LabelRun, LabelSettings, LabelSummary, plan_frames
from inference_server.manifest import Manifest
from inference_server.metadata import ExportMetadata, read_metadata
from inference_server.sources import Source, expand_inputs
from inference_server.streams import default_streams, open_streams
from segloop.run_environment import cpu_model


def _cpu_s() -> float:
    """CPU seconds of this process and of its waited-for children (decoder processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _rate(
    runs: Sequence[Callable[[np.ndarray], object]], batches: list[np.ndarray], warmup: int
) -> tuple[float, float]:
    """Frames/s and CPU ms per frame after ``warmup`` batches, with every run (one, or one
    per inference stream) taking the next batch on its own thread."""
    for run in runs:
        for batch in batches[:warmup]:
            run(batch)
    work: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    for batch in batches[warmup:]:
        work.put(batch)

    errors: list[BaseException] = []

    def drain(run: Callable[[np.ndarray], object]) -> None:
        while not errors:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                return
            try:
                run(batch)
            except BaseException as exc:  # re-raised in the calling thread below
                errors.append(exc)

    threads = [threading.Thread(target=drain, args=(run,)) for run in runs]
    frames = sum(len(b) for b in batches[warmup:])
    cpu, start = _cpu_s(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return frames / (time.perf_counter() - start), 1000 * (_cpu_s() - cpu) / frames


def _pipeline(
    labelers: list[LabelerBackend],
    metadata: ExportMetadata,
    sources: list[Source],
    args: argparse.Namespace,
    out: Path,
) -> tuple[LabelSummary, float]:
    """One ``segloop label`` run over ``sources`` into the new folder ``out``; with its CPU ms
    per frame (decoder processes and start-up included)."""
    if out.exists():
        raise SystemExit(f"{out} exists: give a --work-dir without earlier benchmark runs")
    settings = LabelSettings(
        out=out,
        batch_size=args.batch,
        decode_workers=args.decode_workers,
        write_workers=args.write_workers,
    )
    manifest = Manifest(out, metadata.engine_hash).open()
    try:
        plan = plan_frames(sources, manifest, settings)
        cpu = _cpu_s()
        summary = LabelRun(labelers, metadata, manifest, settings).run(plan)
        return summary, 1000 * (_cpu_s() - cpu) / max(summary.frames, 1)
    finally:
        manifest.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--frames", type=Path, required=True, help="a folder of frames")
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="ort-cpu")
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=None,
        help="inference streams; several counts run the pipeline once each [2 on ort-cpu, else 1]",
    )
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--write-workers", type=int, default=2)
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="ONNX Runtime threads do not busy-wait (session.intra_op.allow_spinning=0)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the pipeline runs' outputs here [a temporary folder, removed at the end]",
    )
    args = parser.parse_args()
    # Imported here, not at the top: the pipeline's spawned decoder processes import this
    # script again, and torch there would add its import time to the measured start-up.
    import torch
    import torch.nn.functional as F

    from export.graphs import MEAN, STD
    from training.checkpoint import load_for_inference
    from training.confidence_levels import confidence_levels

    torch.set_num_threads(args.threads)
    metadata = read_metadata(args.export)
    sources = expand_inputs([str(args.frames)])[: args.count]
    frames = np.stack([fit_frame(decode_image(str(s.path)), metadata) for s in sources])
    batches = [frames[i : i + args.batch] for i in range(0, len(frames), args.batch)]
    device = torch.device(args.device)
    model, _, eln = load_for_inference(args.checkpoint, device)
    model.eval()
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255.0

    def eager(batch: np.ndarray, half: bool = False) -> None:
        with torch.inference_mode(), torch.autocast(device.type, enabled=half):
            frames = torch.from_numpy(batch).to(device)
            image = (frames.permute(0, 3, 1, 2).float() - mean) / std
            probs = F.softmax(model(image).float(), dim=1)
            confidence, label = probs.max(dim=1)
            maps = [label.to(torch.uint8), confidence_levels(confidence)]
            if eln is not None:
                reliability = eln.predict_reliability(image, probs)[:, 0]
                maps.append((reliability * 255).round().to(torch.uint8))
            [m.cpu().numpy() for m in maps]

    results: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}  # CPU time per frame, all threads and processes
    results["pytorch_eager_fp32"], cpu_ms["pytorch_eager_fp32"] = _rate(
        [eager], batches, args.warmup
    )
    if device.type == "cuda":
        results["pytorch_eager_fp16_autocast"], _ = _rate(
            [lambda b: eager(b, half=True)], batches, args.warmup
        )
    single = f"onnx_labeler_{args.backend}"
    with open_labeler(
        args.export, args.backend, threads=args.threads, spin=not args.no_spin
    ) as labeler:
        results[single], cpu_ms[single] = _rate([labeler.label], batches, args.warmup)
    summaries: dict[int, LabelSummary] = {}
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="segloop-bench-"))
    try:
        for streams in args.streams or [default_streams(args.backend)]:
            with open_streams(
                args.export, args.backend, args.threads, streams, metadata, not args.no_spin
            ) as labelers:
                if streams > 1:
                    key = f"{single}_{streams}_streams"
                    runs = [labeler.label for labeler in labelers]
                    results[key], cpu_ms[key] = _rate(runs, batches, args.warmup)
                summaries[streams], cpu_ms[f"segloop_label_{streams}_streams"] = _pipeline(
                    labelers, metadata, sources, args, work / f"{streams}_streams"
                )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    model_only = max(v for k, v in results.items() if k.startswith(single))
    ratios: dict[str, dict[str, float]] = {"end_to_end": {}, "steady": {}}
    for streams, summary in summaries.items():
        # end to end (decoder start-up included) and after the first frame is written
        results[f"segloop_label_{streams}_streams"] = summary.frames_per_s
        results[f"segloop_label_{streams}_streams_steady"] = summary.steady_frames_per_s
        ratios["end_to_end"][f"{streams}_streams"] = round(summary.frames_per_s / model_only, 3)
        ratios["steady"][f"{streams}_streams"] = round(summary.steady_frames_per_s / model_only, 3)
    report = {
        "machine": f"{cpu_model()}, {args.threads} threads",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "frame_size": list(frames.shape[1:3]),
        "batch": args.batch,
        "ort_spinning": not args.no_spin,
        "frames": len(frames),
        "frames_per_s": {k: round(v, 2) for k, v in results.items()},
        "model_only_frames_per_s": round(model_only, 2),
        "cpu_ms_per_frame": {k: round(v, 2) for k, v in cpu_ms.items()},
        "onnx_vs_eager": round(model_only / results["pytorch_eager_fp32"], 3),
        "pipeline_vs_model_only": ratios,
        "pipeline_start_up_s": {
            f"{streams}_streams": round(summary.first_frame_s, 3)
            for streams, summary in summaries.items()
        },
        "pipeline_errors": sum(summary.errors for summary in summaries.values()),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
