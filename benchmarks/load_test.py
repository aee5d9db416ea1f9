"""Load test of a running ``segloop serve`` (loopback only): throughput and p50/p95/p99
latency at several concurrencies, plus the error count.

    segloop serve runs/export --port 8080 &
    python benchmarks/load_test.py --url http://127.0.0.1:8080 --image frame.png \
        --concurrency 1 8 32 --requests 200 --seconds 60

Each concurrency level sends at most ``--requests`` requests and stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


async def level(
    client: httpx.AsyncClient, url: str, body: bytes, concurrency: int, requests: int,
    seconds: float,
) -> dict[str, float]:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal sent, errors
        while sent < requests and time.monotonic() < deadline:
            sent += 1
            start = time.perf_counter()
            try:
                response = await client.post(
                    url, content=body, headers={"content-type": "image/png"}
                )
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, float]]:
    body = args.image.read_bytes()
    url = f"{args.url.rstrip('/')}/v1/segment"
    limits = httpx.Limits(max_connections=max(args.concurrency) + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(args.warmup):
            await client.post(url, content=body, headers={"content-type": "image/png"})
        return [
            await level(client, url, body, c, args.requests, args.seconds) for c in args.concurrency
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    host = urlparse(args.url).hostname
    if host not in LOOPBACK:
        parser.error(f"{host}: the load test only talks to loopback servers")
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
