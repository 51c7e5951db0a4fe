"""The fixed per-step cost of watching: a 4-16-2 model whose plain step is ~170 µs of CPU.

Alternates plain and `basic` runs (600 timed steps each, after 30 warm-up steps, ``--rounds``
times), times every step with ``time.thread_time`` (other processes' load adds little), leaves out
the sampled steps, and prints the median plain step, the median watched step and their difference:
what every unsampled step pays whatever the model (the hooks, the gradient-norm kernel of a tiny
model, the step row). Run it against another tree with ``PYTHONPATH=<tree>/src``. Always exits 0.

    python benchmarks/overhead_fixed.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import modeldebug


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(4)]
    clock = time.thread_time

    def step(i: int) -> float:
        x, y = data[i % 4]
        t0 = clock()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        return clock() - t0

    res: dict[str, list[float]] = {"plain": [], "basic": []}
    for _ in range(args.rounds):
        for cfg in ("plain", "basic"):
            session = modeldebug.watch(model, optimizer=opt, level="basic", db=":memory:") if cfg == "basic" else None
            if session is not None:
                session.__enter__()
            for i in range(30):
                step(i)
            times = [step(30 + i) for i in range(600)]
            if session is not None:
                session.__exit__(None, None, None)
            # steps 30-629: the sampled ones at `basic` are the multiples of 50
            res[cfg].extend(t for i, t in enumerate(times) if cfg == "plain" or (30 + i) % 50)
    plain, watched = statistics.median(res["plain"]), statistics.median(res["basic"])
    print(f"{modeldebug.__file__}: plain {plain * 1e6:.1f} µs, watched {watched * 1e6:.1f} µs, "
          f"fixed cost {(watched - plain) * 1e6:.1f} µs per unsampled step (goal < 100 µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
