"""PNG encode time and size of label-like maps under three libpng/zlib settings: the adaptive
row filter (libpng's default), the "sub" filter, and the "up" filter with zlib's run-length
strategy (``segloop.imageio.encode_png(fast=True)``).

    python benchmarks/png_encode.py runs/label/label runs/label/confidence \\
        runs/label/reliability runs/label/overlay --maps 8 --repeat 40

Uses the first ``--maps`` maps under each folder given (the output folders of a
``segloop label`` run); prints, per folder and setting, the mean encode time in ms (thread CPU
time, so other processes on the machine do not count) and the mean bytes per file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

SETTINGS = {
    "adaptive": [],
    "sub": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB],
    "up+rle": [
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_UP,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--maps", type=int, default=8, help="maps per folder")
    parser.add_argument("--repeat", type=int, default=40, help="encodes of each map")
    parser.add_argument("--compression", type=int, default=1)
    args = parser.parse_args()
    report = {}
    for folder in args.folders:
        paths = [p for p in sorted(folder.rglob("*.png")) if not p.name.startswith(".")]
        images = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths[: args.maps]]
        if not images:
            raise SystemExit(f"no PNG maps under {folder}")
        for name, extra in SETTINGS.items():
            options = [cv2.IMWRITE_PNG_COMPRESSION, args.compression, *extra]
            size = 0
            start = time.thread_time()
            for image in images:
                for _ in range(args.repeat):
                    _, encoded = cv2.imencode(".png", image, options)
                size += len(encoded)
            report[f"{folder.name}/{name}"] = {
                "ms": round(1000 * (time.thread_time() - start) / (len(images) * args.repeat), 3),
                "bytes": round(size / len(images)),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
