"""What watching adds to a training run's peak memory: plain and watched runs, each in a fresh process.

Two cases, each trained for ``--steps`` steps with Adam and ``zero_grad()`` (set to None), at each
level, recorded to a file (the repro bundle armed, as under `modeldebug run`):

- ``wide`` (default): 4 linear layers of ``--width`` x ``--width`` (67M parameters, 256 MB of float32
  gradients at 4096). A watcher that held the last step's gradients into the next step, or copied
  every weight before a sampled step, adds about one set of gradients (1.0x) to the peak.
- ``logits``: a language-model head, ``Embedding(1000, 64)`` then ``Linear(64, 32000)``, on 8 x 512
  tokens: 131M logits (500 MB in float32). Measuring an output that size in one piece makes
  temporaries as large as it (the sampled steps: the first three here).

Prints each run's peak (the process's maximum resident set on the CPU, or
``torch.cuda.max_memory_allocated`` with ``--device cuda``) and the watched runs' excess over plain,
also in units of the model's gradients (wide) or of the logits. Run it against another tree with ``PYTHONPATH=<tree>/src``.
Always exits 0.

    python benchmarks/peak_memory.py [--case wide|logits] [--width 4096] [--device cuda]
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
case, width, steps, level, device, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]
torch.manual_seed(0)
torch.set_num_threads(1)
if case == "wide":
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(4)]).to(device)
    x = torch.randn(8, width, device=device)
    loss_of = lambda out: out.square().mean()
else:
    model = nn.Sequential(nn.Embedding(1000, 64), nn.Linear(64, 32000)).to(device)
    x = torch.randint(0, 1000, (8, 512), device=device)
    y = torch.randint(0, 32000, (8 * 512,), device=device)
    loss_of = lambda out: nn.functional.cross_entropy(out.view(-1, 32000), y)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
def train():
    for _ in range(steps):
        opt.zero_grad()
        loss_of(model(x)).backward()
        opt.step()
if level == "plain":
    train()
else:
    with modeldebug.watch(model, opt, level=level, db=db):
        train()
if device == "cuda":
    peak = torch.cuda.max_memory_allocated() / 2**20
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
grads = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
print(json.dumps({"peak_mb": peak, "ref_mb": grads if case == "wide" else 8 * 512 * 32000 * 4 / 2**20}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=("wide", "logits"), default="wide")
    p.add_argument("--width", type=int, default=4096, help="the wide case's layer width")
    p.add_argument("--steps", type=int, default=None, help="steps a run (default: 12 wide, 4 logits)")
    p.add_argument("--levels", default="basic,detailed")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-db", action="store_true", help="keep no record (default: a record file, as a run makes)")
    args = p.parse_args(argv)
    steps = args.steps or (12 if args.case == "wide" else 4)
    runs = {}
    tmp = tempfile.TemporaryDirectory()
    for level in ["plain", *args.levels.split(",")]:
        db = ":memory:" if args.memory_db else str(Path(tmp.name) / f"{level}.db")
        out = subprocess.run([sys.executable, "-c", CHILD, args.case, str(args.width), str(steps), level,
                              args.device, db], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{level}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        runs[level] = json.loads(out.stdout.strip().splitlines()[-1])
    plain = runs.get("plain")
    unit = "the model's gradients" if args.case == "wide" else "the logits"
    print(f"case {args.case}, {steps} steps, {args.device}")
    for level, r in runs.items():
        line = f"{level:>13}: peak {r['peak_mb']:8.1f} MB"
        if plain is not None and level != "plain":
            extra = r["peak_mb"] - plain["peak_mb"]
            line += f"  {extra:+8.1f} MB over plain = {extra / r['ref_mb']:+.2f} x {unit}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
