"""How much does `modeldebug.watch` slow a training step down?

Trains small models on CPU with synthetic data (no downloads):

- ``mlp``: 784-512-256-10 with ReLU, batch 128, CrossEntropyLoss, SGD with momentum;
- ``cnn``: three 3x3 conv + BatchNorm2d + ReLU blocks (3->32->64->64 channels) with max pooling,
  then a Linear head; input 3x32x32, batch 64;
- ``deep``: 500 x (Linear(16, 16) + ReLU) and a Linear head, batch 32 (1,001 leaf modules, 1,002
  parameter tensors: the per-module and per-parameter costs);
- ``transformer``: a 2-layer TransformerEncoder (d_model 64, 4 heads, sequence 32), mean-pooled
  into a Linear head, batch 16; ``transformer-compiled`` is the same model under ``torch.compile``
  (``--backend``, default inductor); for compiled models the dynamo counters (graphs, graph
  breaks, recompiles) of plain and watched runs are printed too.

Each run does some warm-up steps, then times every full step (zero_grad, forward, loss, backward,
optimizer step) with ``time.perf_counter``. Runs alternate, plain then watched, level by level and
round by round (plain, basic, plain, detailed, plain, comprehensive, ...), so that machine noise hits
both alike. The table gives each configuration's median step time and the ratio watched/plain
(medians; plain pooled over all its runs). The mean column includes the sampled steps, where
activation statistics are taken, so it shows the amortised cost. The record is written to SQLite in
memory by default; ``--db-dir`` writes real files to a temporary directory, removed afterwards.

``--clock cpu`` times each step with the thread's CPU time instead of the wall clock: on a shared
machine other processes then add much less noise (the benchmark runs one torch thread).
``--json FILE`` writes the step times' summary for `overhead_compare.py` (before/after tables).

Run it (about 4 minutes on 2 cores for mlp,cnn; ``--quick`` is a smoke test of about 20 seconds)::

    python benchmarks/overhead.py
    python benchmarks/overhead.py --models mlp,deep,transformer --levels basic,detailed --clock cpu
    python benchmarks/overhead.py --models mlp --steps 500 --rounds 5 --threads 2 --db-dir

It reports and always exits 0; targets (issue 17): basic <= 1.03x (MLP, CNN, transformer) and
<= 1.05x (deep), detailed mean <= 1.15x; compiled models the same, with no added graphs.
"""

from __future__ import annotations

import argparse
import gc
import json
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
BASIC_TARGET: dict[str, float] = {"mlp": 1.03, "cnn": 1.03, "deep": 1.05, "transformer": 1.03,
                                  "transformer-compiled": 1.03}
DETAILED_TARGET = 1.15  # mean ratio
# steps per run: CNN steps cost ~25x an MLP step, the deep model's ~6x
DEFAULT_STEPS: dict[str, int] = {"mlp": 300, "cnn": 40, "deep": 60, "transformer": 150, "transformer-compiled": 150}
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def make_cnn() -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(*block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def make_deep() -> nn.Module:
    return nn.Sequential(*[m for _ in range(500) for m in (nn.Linear(16, 16), nn.ReLU())], nn.Linear(16, 10))


class SmallTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(1))


# name -> (factory, input shape of one sample, batch size)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "mlp": (make_mlp, (784,), 128),
    "cnn": (make_cnn, (3, 32, 32), 64),
    "deep": (make_deep, (16,), 32),
    "transformer": (SmallTransformer, (32, 64), 16),
    "transformer-compiled": (SmallTransformer, (32, 64), 16),
}


class Bench:
    """One model, its optimizer and a few synthetic batches, reused by every run."""

    def __init__(self, name: str, n_batches: int = 4, clock: str = "wall", backend: str = "inductor") -> None:
        factory, shape, batch = MODELS[name]
        torch.manual_seed(0)
        self.name = name
        self.model = factory()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.loss_fn = nn.CrossEntropyLoss()
        self.data = [(torch.randn(batch, *shape), torch.randint(0, 10, (batch,))) for _ in range(n_batches)]
        self.clock = CLOCKS[clock]
        self.call: nn.Module = torch.compile(self.model, backend=backend) if name.endswith("-compiled") else self.model

    def step(self, i: int) -> float:
        x, y = self.data[i % len(self.data)]
        clock = self.clock
        t0 = clock()
        self.opt.zero_grad()
        loss = self.loss_fn(self.call(x), y)
        loss.backward()
        self.opt.step()
        return clock() - t0

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


def dynamo_counts() -> dict[str, int]:
    """Graphs compiled, graph breaks and recompiles so far (torch._dynamo's counters)."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]), "graph_breaks": sum(counters["graph_break"].values()),
            "recompiles": sum(counters["recompiles"].values())}


def measure(args: argparse.Namespace, db_dir: Path | None) -> dict[tuple[str, str], list[float]]:
    benches = [Bench(name, clock=args.clock, backend=args.backend) for name in args.models]
    times: dict[tuple[str, str], list[float]] = {}
    args.dynamo = {}
    for r in range(args.rounds):
        for b in benches:
            steps = args.steps or DEFAULT_STEPS[b.name]
            for level in args.levels:  # plain, basic, plain, detailed, plain, comprehensive
                for cfg in ("plain", level):
                    before = dynamo_counts() if b.name.endswith("-compiled") else None
                    t = b.run(None if cfg == "plain" else cfg, args.warmup, steps, db_dir, f"{b.name}-{cfg}-{r}")
                    times.setdefault((b.name, cfg), []).extend(t)
                    if before is not None:  # what this run added to dynamo's work
                        after = dynamo_counts()
                        added = args.dynamo.setdefault((b.name, cfg), dict.fromkeys(after, 0))
                        for k in after:
                            added[k] += after[k] - before[k]
    return times


def report(args: argparse.Namespace, times: dict[tuple[str, str], list[float]]) -> str:
    head = f"{'model':<6} {'config':<14} {'steps':>6} {'median ms':>10} {'ratio':>7} {'mean ms':>9} {'mean ratio':>10}"
    lines = [head, "-" * len(head)]
    ratios: dict[tuple[str, str], float] = {}
    for name in args.models:
        plain = times[(name, "plain")]
        p_med, p_mean = statistics.median(plain), statistics.fmean(plain)
        for cfg in ("plain", *args.levels):
            t = times[(name, cfg)]
            med, mean = statistics.median(t), statistics.fmean(t)
            ratios[(name, cfg)] = med / p_med
            lines.append(f"{name:<6} {cfg:<14} {len(t):>6} {med * 1e3:>10.3f} {med / p_med:>6.3f}x "
                         f"{mean * 1e3:>9.3f} {mean / p_mean:>9.3f}x")
    summary = []
    for name in args.models:
        if "basic" in args.levels:
            basic = ratios[(name, "basic")]
            ok = "ok" if basic <= BASIC_TARGET[name] else "OVER"
            summary.append(f"{name} basic {basic:.3f}x (median; target <={BASIC_TARGET[name]:.2f}x {ok})")
        if "detailed" in args.levels:
            det = statistics.fmean(times[(name, "detailed")]) / statistics.fmean(times[(name, "plain")])
            ok = "ok" if det <= DETAILED_TARGET else "OVER"
            summary.append(f"{name} detailed {det:.3f}x (mean; target <={DETAILED_TARGET:.2f}x {ok})")
    dyn = [f"{name} {cfg}: {c['graphs']} graphs, {c['graph_breaks']} breaks, {c['recompiles']} recompiles"
           for (name, cfg), c in sorted(getattr(args, "dynamo", {}).items())]
    return "\n".join(lines) + "\n\nsummary: " + "; ".join(summary) + (
        "\ndynamo (added by each configuration's runs): " + "; ".join(dyn) if dyn else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Step-time overhead of modeldebug.watch on CPU.")
    p.add_argument("--models", default="mlp,cnn", help=f"comma-separated, of: {','.join(MODELS)}")
    p.add_argument("--levels", default=",".join(LEVELS), help="comma-separated levels to compare with plain")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: perf_counter; cpu: this thread's CPU time (less noise on a shared machine)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend of the -compiled models")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the summary as JSON")
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
    args.levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    if not args.levels or any(lv not in LEVELS for lv in args.levels):
        p.error(f"--levels: choose from {','.join(LEVELS)}")
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
    print(f"modeldebug {modeldebug.__version__} ({Path(modeldebug.__file__).parent}), torch {torch.__version__}, "
          f"CPU, {args.threads} thread(s), {args.rounds} round(s), warm-up {args.warmup}, {where}, "
          f"clock {args.clock}\n")
    print(report(args, times))
    if args.json:
        out = {f"{n}/{c}": {"median_s": statistics.median(t), "mean_s": statistics.fmean(t), "n": len(t),
                            "p10_s": statistics.quantiles(t, n=10)[0] if len(t) > 1 else t[0]}
               for (n, c), t in times.items()}
        out["dynamo"] = {f"{n}/{c}": v for (n, c), v in getattr(args, "dynamo", {}).items()}
        Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"(took {time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
