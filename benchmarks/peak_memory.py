"""What watching adds to a training run's peak memory: plain and watched runs, each in a fresh process.

A model of ``--width`` x ``--width`` linear layers (4 by default: 67M parameters, 268 MB of float32
gradients at 4096) trained for ``--steps`` steps with Adam and ``zero_grad()`` (set to None), at each
level, recorded to a file (the repro bundle armed, as under `modeldebug run`). Prints each run's peak: the process's maximum resident set on the CPU, or
``torch.cuda.max_memory_allocated`` with ``--device cuda``; and the watched runs' excess over plain,
also in units of one set of gradients. A watcher that held the last step's gradients into the next
step would show about 1.0 there. Run it against another tree with ``PYTHONPATH=<tree>/src``.
Always exits 0.

    python benchmarks/peak_memory.py [--width 4096] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, torch
from torch import nn
import modeldebug  # in every run: the difference is the watching, not the import
width, steps, level, device = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Sequential(*[nn.Linear(width, width) for _ in range(4)]).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.randn(8, width, device=device)
def train():
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
if level == "plain":
    train()
else:
    with modeldebug.watch(model, opt, level=level, db=sys.argv[5]):
        train()
if device == "cuda":
    peak = torch.cuda.max_memory_allocated() / 2**20
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
grads = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
print(json.dumps({"peak_mb": peak, "grads_mb": grads}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--levels", default="basic,detailed")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-db", action="store_true", help="keep no record (default: a record file, as a run makes)")
    args = p.parse_args(argv)
    runs = {}
    tmp = tempfile.TemporaryDirectory()
    for level in ["plain", *args.levels.split(",")]:
        db = ":memory:" if args.memory_db else str(Path(tmp.name) / f"{level}.db")
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.width), str(args.steps), level, args.device, db],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{level}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        runs[level] = json.loads(out.stdout.strip().splitlines()[-1])
    plain = runs.get("plain")
    for level, r in runs.items():
        line = f"{level:>13}: peak {r['peak_mb']:8.1f} MB"
        if plain is not None and level != "plain":
            extra = r["peak_mb"] - plain["peak_mb"]
            line += f"  {extra:+8.1f} MB over plain = {extra / r['grads_mb']:+.2f} x one set of gradients"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
