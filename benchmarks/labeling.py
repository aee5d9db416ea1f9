"""Labeling throughput, three ways in one process (docs/BENCHMARKS.md):

1. PyTorch eager teacher + ELN, the naive way: normalise, model, ``F.softmax``, max/argmax,
   ELN, uint8 maps copied to numpy;
2. the fused ``labeler.onnx`` on an ONNX Runtime backend, frames already in memory;
3. the full ``segloop label`` pipeline over PNG files: decoder processes, batched inference,
   PNG writer threads, manifest.

    python benchmarks/labeling.py --checkpoint runs/baseline/best.pt --export runs/export \
        --frames data/embedded/leftImg8bit/val --count 256 --batch 8 --threads 2

Frames/s are measured after ``--warmup`` batches; the pipeline run writes into a fresh
temporary folder. ``--device cuda`` also times eager FP16 (autocast) and uses ``--backend``
(e.g. ort-cuda) for the exported graph.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from export.graphs import MEAN, STD
from inference_server.backends import open_labeler
from inference_server.decode import decode_image
from inference_server.frames import fit_frame
from inference_server.labeler import LabelRun, LabelSettings, plan_frames
from inference_server.manifest import Manifest
from inference_server.metadata import read_metadata
from inference_server.sources import expand_inputs
from segloop.run_environment import cpu_model
from training.checkpoint import load_for_inference
from training.confidence_levels import confidence_levels


def _rate(run: object, batches: list[np.ndarray], warmup: int) -> float:
    for batch in batches[:warmup]:
        run(batch)  # type: ignore[operator]
    start = time.perf_counter()
    for batch in batches[warmup:]:
        run(batch)  # type: ignore[operator]
    return sum(len(b) for b in batches[warmup:]) / (time.perf_counter() - start)


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
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--write-workers", type=int, default=2)
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="ONNX Runtime threads do not busy-wait (session.intra_op.allow_spinning=0)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
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

    results: dict[str, float] = {"pytorch_eager_fp32": _rate(eager, batches, args.warmup)}
    if device.type == "cuda":
        results["pytorch_eager_fp16_autocast"] = _rate(
            lambda b: eager(b, half=True), batches, args.warmup
        )
    with open_labeler(
        args.export, args.backend, threads=args.threads, spin=not args.no_spin
    ) as labeler:
        results[f"onnx_labeler_{args.backend}"] = _rate(labeler.label, batches, args.warmup)
        out = Path(tempfile.mkdtemp(prefix="segloop-bench-"))
        try:
            settings = LabelSettings(
                out=out,
                batch_size=args.batch,
                decode_workers=args.decode_workers,
                write_workers=args.write_workers,
            )
            manifest = Manifest(out, metadata.engine_hash).open()
            plan = plan_frames(sources, manifest, settings)
            summary = LabelRun(labeler, metadata, manifest, settings).run(plan)
            manifest.close()
        finally:
            shutil.rmtree(out, ignore_errors=True)
    # end to end (decoder start-up included) and after the first frame is written
    results["segloop_label_pipeline"] = summary.frames_per_s
    results["segloop_label_pipeline_steady"] = summary.steady_frames_per_s
    model_only = results[f"onnx_labeler_{args.backend}"]
    report = {
        "machine": f"{cpu_model()}, {args.threads} threads",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "frame_size": list(frames.shape[1:3]),
        "batch": args.batch,
        "ort_spinning": not args.no_spin,
        "frames": len(frames),
        "frames_per_s": {k: round(v, 2) for k, v in results.items()},
        "onnx_vs_eager": round(model_only / results["pytorch_eager_fp32"], 3),
        "pipeline_vs_model_only": round(results["segloop_label_pipeline"] / model_only, 3),
        "pipeline_steady_vs_model_only": round(
            results["segloop_label_pipeline_steady"] / model_only, 3
        ),
        "pipeline_errors": summary.errors,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
