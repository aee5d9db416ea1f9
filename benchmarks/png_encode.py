"""PNG encode time of label-like maps: libpng's adaptive row filter vs the "sub" filter.

    python benchmarks/png_encode.py --labels runs/label/label --repeat 300

Uses the first maps found under each folder given (label, confidence, reliability folders of a
``segloop label`` run); prints ms per encode and bytes per file for both settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--compression", type=int, default=1)
    args = parser.parse_args()
    report = {}
    for folder in args.folders:
        path = next(p for p in sorted(folder.rglob("*.png")) if not p.name.startswith("."))
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        for name, extra in (
            ("adaptive", []),
            ("sub", [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]),
        ):
            options = [cv2.IMWRITE_PNG_COMPRESSION, args.compression, *extra]
            start = time.perf_counter()
            for _ in range(args.repeat):
                _, encoded = cv2.imencode(".png", image, options)
            report[f"{folder.name}/{name}"] = {
                "ms": round(1000 * (time.perf_counter() - start) / args.repeat, 3),
                "bytes": len(encoded),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
