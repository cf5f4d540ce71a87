"""Benchmark: the chunked SFT loss (heal_batch.training.loss) against the plain shifted
cross-entropy.

    python tests/bench/bench_loss.py [--positions 4096] [--vocab 49152] [--dtype bfloat16]

Prints, for forward + backward of the loss alone from a logits tensor (as the model returns it),
the peak memory added above the logits and their gradient (RSS high-water mark in a fresh process
per variant, so the two do not share an allocator) and the seconds, best of 3 runs each, and the
chunked/plain ratios. Goal: much less memory at no more than ~1.1x the time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def child(variant: str, positions: int, vocab: int, dtype: str) -> dict:
    import torch
    import torch.nn.functional as F

    from heal_batch.training.loss import next_token_nll

    torch.manual_seed(0)
    logits = torch.randn(1, positions, vocab, dtype=getattr(torch, dtype), requires_grad=True)
    labels = torch.randint(0, vocab, (1, positions))
    labels[:, : positions // 4] = -100  # a prompt quarter without loss
    grad = torch.zeros_like(logits)  # what backward will fill: count it in the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del grad
    began = time.perf_counter()
    if variant == "plain":
        loss = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(),
            labels[:, 1:].flatten(),
            ignore_index=-100,
            reduction="sum",
        )
    else:
        loss = next_token_nll(logits, labels)
    loss.backward()
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"extra_mb": (peak - base) / 1024, "seconds": seconds, "loss": loss.item()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=49152)  # SmolLM2's
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.positions, args.vocab, args.dtype)))
        return
    runs: dict[str, list[dict]] = {"plain": [], "chunked": []}
    for _ in range(3):
        for variant in runs:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                variant,
                "--positions",
                str(args.positions),
                "--vocab",
                str(args.vocab),
                "--dtype",
                args.dtype,
            ]
            runs[variant].append(json.loads(subprocess.check_output(cmd, text=True)))
    logits_mb = args.positions * args.vocab * (2 if args.dtype == "bfloat16" else 4) / 2**20
    print(
        f"loss forward+backward, {args.positions} positions x {args.vocab} vocab, {args.dtype} "
        f"logits ({logits_mb:.0f} MB), best of 3 in fresh processes:"
    )
    best = {v: min(r, key=lambda x: x["seconds"]) for v, r in runs.items()}
    mem = {v: min(x["extra_mb"] for x in r) for v, r in runs.items()}
    for variant in runs:
        print(
            f"  {variant:<8} +{mem[variant]:7.0f} MB peak   {best[variant]['seconds']:6.2f} s   "
            f"loss {best[variant]['loss']:.1f}"
        )
    print(
        f"  chunked/plain: memory {mem['chunked'] / max(mem['plain'], 1):.2f}x, "
        f"time {best['chunked']['seconds'] / best['plain']['seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
