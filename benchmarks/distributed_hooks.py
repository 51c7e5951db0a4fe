"""DistWatch's module hooks on a deep model, one process: global module hooks on every step vs hooks on
the outermost model and its BatchNorm layers only (what DistWatch does after the first step).

    python benchmarks/distributed_hooks.py [--layers 300] [--trials 7] [--steps 100]

An MLP of `layers` x (Linear(16, 16), ReLU), batch 8, one CPU thread; plain, `global` and `local`
trials alternate in the same process; the medians and the ratios to plain are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from modeldebug.distributed.ranks import RankInfo
from modeldebug.distributed.watch import DistWatch
from modeldebug.distributed.watchdog import HangSettings
from modeldebug.record import RunWriter


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=300)
    p.add_argument("--trials", type=int, default=7)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(args.layers) for m in (nn.Linear(16, 16), nn.ReLU())])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(8, 16)

    def loop(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    loop(20)  # warm-up
    results: dict[str, list[float]] = {"plain": [], "global": [], "local": []}
    for _ in range(args.trials):
        for mode, times in results.items():
            if mode == "plain":
                times.append(loop(args.steps))
                continue
            watch = DistWatch(RunWriter(":memory:"), RankInfo(0, 2, 0, "bench"), hang=HangSettings(min_s=60)).attach()
            if mode == "global":
                watch._local = []  # never hook locally: the global module hooks stay on every step
            try:
                times.append(loop(args.steps))
            finally:
                watch.detach()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"MLP of {2 * args.layers} modules, batch 8, 1 thread, {args.steps} steps x {args.trials} trials")
    for k, v in med.items():
        print(f"{k:6s} {v * 1e3:.2f} ms/step  ratio to plain {v / med['plain']:.3f}")


if __name__ == "__main__":
    main()
