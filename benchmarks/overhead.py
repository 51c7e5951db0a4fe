"""How much does `modeldebug.watch` slow a training step down?

Trains two small models on CPU with synthetic data (no downloads):

- ``mlp``: 784-512-256-10 with ReLU, batch 128, CrossEntropyLoss, SGD with momentum;
- ``cnn``: three 3x3 conv + BatchNorm2d + ReLU blocks (3->32->64->64 channels) with max pooling,
  then a Linear head; input 3x32x32, batch 64.

Each run does some warm-up steps, then times every full step (zero_grad, forward, loss, backward,
optimizer step) with ``time.perf_counter``. Runs alternate, plain then watched, level by level and
round by round (plain, basic, plain, detailed, plain, comprehensive, ...), so that machine noise hits
both alike. The table gives each configuration's median step time and the ratio watched/plain
(medians; plain pooled over all its runs). The mean column includes the sampled steps, where
activation statistics are taken, so it shows the amortised cost. The record is written to SQLite in
memory by default; ``--db-dir`` writes real files to a temporary directory, removed afterwards.

Run it (about 4 minutes on 2 cores; ``--quick`` is a smoke test of about 20 seconds)::

    python benchmarks/overhead.py
    python benchmarks/overhead.py --models mlp --steps 500 --rounds 5 --threads 2 --db-dir

It reports and always exits 0; targets: basic <= 1.05x (CNN) and <= 1.10x (MLP), detailed <= 1.5x.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

import modeldebug

LEVELS: tuple[str, ...] = ("basic", "detailed", "comprehensive")
BASIC_TARGET: dict[str, float] = {"mlp": 1.10, "cnn": 1.05}
DETAILED_TARGET = 1.5
DEFAULT_STEPS: dict[str, int] = {"mlp": 300, "cnn": 40}  # CNN steps cost ~25x an MLP step


def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def make_cnn() -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(*block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


# name -> (factory, input shape of one sample, batch size)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "mlp": (make_mlp, (784,), 128),
    "cnn": (make_cnn, (3, 32, 32), 64),
}


class Bench:
    """One model, its optimizer and a few synthetic batches, reused by every run."""

    def __init__(self, name: str, n_batches: int = 4) -> None:
        factory, shape, batch = MODELS[name]
        torch.manual_seed(0)
        self.name = name
        self.model = factory()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.loss_fn = nn.CrossEntropyLoss()
        self.data = [(torch.randn(batch, *shape), torch.randint(0, 10, (batch,))) for _ in range(n_batches)]

    def step(self, i: int) -> float:
        x, y = self.data[i % len(self.data)]
        t0 = time.perf_counter()
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0

    def run(self, level: str | None, warmup: int, steps: int, db_dir: Path | None, tag: str) -> list[float]:
        """Per-step times in seconds of `steps` timed steps; `level=None` runs unwatched."""
        gc.collect()
        if level is None:
            ctx: object = nullcontext()
        else:
            db = str(db_dir / f"{tag}.db") if db_dir is not None else ":memory:"
            ctx = modeldebug.watch(self.model, optimizer=self.opt, level=level, db=db)  # type: ignore[arg-type]
        with ctx as session:  # type: ignore[attr-defined]
            for i in range(warmup):
                self.step(i)
            times = [self.step(warmup + i) for i in range(steps)]
        writer = getattr(session, "writer", None)
        if writer is not None:
            writer.close()  # watch() leaves the connection open; close it so the files can go
        return times


def measure(args: argparse.Namespace, db_dir: Path | None) -> dict[tuple[str, str], list[float]]:
    benches = [Bench(name) for name in args.models]
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for b in benches:
            steps = args.steps or DEFAULT_STEPS[b.name]
            for level in LEVELS:  # plain, basic, plain, detailed, plain, comprehensive
                for cfg in ("plain", level):
                    t = b.run(None if cfg == "plain" else cfg, args.warmup, steps, db_dir, f"{b.name}-{cfg}-{r}")
                    times.setdefault((b.name, cfg), []).extend(t)
    return times


def report(args: argparse.Namespace, times: dict[tuple[str, str], list[float]]) -> str:
    head = f"{'model':<6} {'config':<14} {'steps':>6} {'median ms':>10} {'ratio':>7} {'mean ms':>9} {'mean ratio':>10}"
    lines = [head, "-" * len(head)]
    ratios: dict[tuple[str, str], float] = {}
    for name in args.models:
        plain = times[(name, "plain")]
        p_med, p_mean = statistics.median(plain), statistics.fmean(plain)
        for cfg in ("plain", *LEVELS):
            t = times[(name, cfg)]
            med, mean = statistics.median(t), statistics.fmean(t)
            ratios[(name, cfg)] = med / p_med
            lines.append(f"{name:<6} {cfg:<14} {len(t):>6} {med * 1e3:>10.3f} {med / p_med:>6.3f}x "
                         f"{mean * 1e3:>9.3f} {mean / p_mean:>9.3f}x")
    summary = []
    for name in args.models:
        basic = ratios[(name, "basic")]
        ok = "ok" if basic <= BASIC_TARGET[name] else "OVER"
        summary.append(f"{name} basic {basic:.3f}x (target <={BASIC_TARGET[name]:.2f}x {ok})")
    for name in args.models:
        det = ratios[(name, "detailed")]
        ok = "ok" if det <= DETAILED_TARGET else "OVER"
        summary.append(f"{name} detailed {det:.3f}x (target <={DETAILED_TARGET:.1f}x {ok})")
    return "\n".join(lines) + "\n\nsummary (median ratios): " + "; ".join(summary)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Step-time overhead of modeldebug.watch on CPU.")
    p.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp,cnn")
    p.add_argument("--steps", type=int, default=None,
                   help=f"timed steps per run (default per model: {DEFAULT_STEPS})")
    p.add_argument("--warmup", type=int, default=21,
                   help="untimed steps per run (default 21: past the tracer's early samples, steps 0-20)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of alternating plain/watched runs")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--db-dir", nargs="?", const="", default=None, metavar="DIR",
                   help="write real SQLite files to a temporary directory (inside DIR if given)")
    p.add_argument("--quick", action="store_true", help="a few steps, one round: a smoke test")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        p.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    if args.quick:
        args.steps, args.warmup, args.rounds = args.steps or 5, 2, 1
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    if args.db_dir is None:
        times = measure(args, None)
    else:
        with tempfile.TemporaryDirectory(prefix="modeldebug-bench-", dir=args.db_dir or None) as d:
            times = measure(args, Path(d))
    where = f"SQLite files in a temp dir under {args.db_dir or tempfile.gettempdir()}" \
        if args.db_dir is not None else "SQLite :memory:"
    print(f"modeldebug {modeldebug.__version__}, torch {torch.__version__}, CPU, {args.threads} thread(s), "
          f"{args.rounds} round(s), warm-up {args.warmup}, {where}\n")
    print(report(args, times))
    print(f"(took {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
