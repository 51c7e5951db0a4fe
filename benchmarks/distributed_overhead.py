"""Overhead of the cross-rank checks: a 2-rank gloo DDP run, plain vs watched by DistWatch.

    python benchmarks/distributed_overhead.py [--steps 200] [--trials 3] [--every 20]

Each rank trains an MLP 784-512-256-10 (batch 128) with DDP; trials alternate plain and watched
(fingerprints of parameters and gradients at sampled steps, of each step's batch, step timings,
collective wrappers, the watchdog thread) in the same processes, and the median step-time ratio
is printed. No communication is added: the fingerprints stay in each rank's record.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def _loop(ddp: nn.Module, opt: torch.optim.Optimizer, steps: int, x: torch.Tensor, y: torch.Tensor) -> float:
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(x), y).backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def _rank(rank: int, world: int, args: argparse.Namespace, out: str) -> None:
    from modeldebug.distributed.ranks import RankInfo
    from modeldebug.distributed.watch import DistWatch
    from modeldebug.record import RunWriter

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    _loop(ddp, opt, 10, x, y)  # warm-up
    results: dict[str, list[float]] = {"plain": [], "watched": []}
    events = 0
    for _ in range(args.trials):
        for mode in ("plain", "watched"):
            dist.barrier()
            if mode == "plain":
                results[mode].append(_loop(ddp, opt, args.steps, x, y))
                continue
            writer = RunWriter(":memory:")
            watch = DistWatch(writer, RankInfo(rank, world, rank, "bench"), every=args.every).attach()
            try:
                results[mode].append(_loop(ddp, opt, args.steps, x, y))
            finally:
                watch.detach()
            writer.flush()
            events = writer.conn.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM events").fetchone()
    if rank == 0:
        Path(out).write_text(json.dumps({**results, "events": events}))
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--every", type=int, default=20)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        torch.multiprocessing.spawn(_rank, args=(2, args, out), nprocs=2)
        r = json.loads(Path(out).read_text())
    plain, watched = statistics.median(r["plain"]), statistics.median(r["watched"])
    n, size = r["events"]
    print(f"2 ranks, gloo, CPU, MLP 784-512-256-10 b128, {args.steps} steps x {args.trials} trials, every={args.every}")
    print(f"plain   {plain * 1e3:.2f} ms/step  (trials: {', '.join(f'{t * 1e3:.2f}' for t in r['plain'])})")
    print(f"watched {watched * 1e3:.2f} ms/step  (trials: {', '.join(f'{t * 1e3:.2f}' for t in r['watched'])})")
    print(f"ratio watched/plain: {watched / plain:.3f}; record events per rank and trial: {n}, {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
