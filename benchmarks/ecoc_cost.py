"""Seconds per call of ECOC reliable-bit mining and of the ECOC loss (forward + backward) on
random bits, at a given batch and size (planning figures for the ECOC terms' cost).

    python benchmarks/ecoc_cost.py --threads 1

Random logits (standard deviation 3) leave most pixels undecided at theta 0.95, the mining's
worst case; a trained teacher decides most pixels at the first candidate.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from training.methods.ecoc import build_codebook, ecoc_loss, hybrid_bits, reliable_bit_mask


def seconds(call: Callable[[], object], repeats: int) -> float:
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 256], metavar=("H", "W"))
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--bits", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codebook = torch.tensor(build_codebook(args.classes, args.bits, 8), dtype=torch.float32)
    logits = torch.randn(args.batch, args.bits, *args.size) * 3
    probs = logits.sigmoid()
    for size in (tuple(args.size), (args.size[0] // 4, args.size[1] // 4)):
        small = torch.nn.functional.interpolate(probs, size=size, mode="nearest")
        mining = seconds(lambda s=small: reliable_bit_mask(s, codebook), args.repeats)
        print(f"mining at {size[0]}x{size[1]}: {mining:.3f} s", flush=True)
    mask, top = reliable_bit_mask(probs, codebook)
    target = hybrid_bits(probs, codebook, mask, top)
    weight = torch.ones(args.batch, *args.size)
    leaf = logits.clone().requires_grad_()

    def loss_step() -> None:
        ecoc_loss(leaf, target, top, weight, codebook).backward()

    print(f"loss forward + backward: {seconds(loss_step, args.repeats):.3f} s", flush=True)


if __name__ == "__main__":
    main()
