"""How long does analysing a deep model's record take, and how many SQL statements does it run?

Builds a synthetic record of a 1,000-layer model trained for 1,000 steps with the real ``RunWriter``
(a Linear layer per block with a weight and a bias, so 2,000 parameters), laid out as ``modeldebug
run`` lays it out at the ``basic`` level: the ``steps`` row every step; activation statistics of
every layer, and the parameter and update norms of every parameter, on the sampled steps (the first
three, 5, 10, 20, then every 50th); loss-input and model-input statistics on the sampled steps; the
optimizer event. Per-parameter gradient norms go either on the sampled steps only (``sampled``,
the layout the record-size work of issue 13 aims at) or on every step (``every-step``, what capture
writes today: two million rows at this size).

Then it opens the record from disk (which checks it: layout, meta, quick_check, steps, entities,
events) and times ``modeldebug.rules.analyze`` on it (every rule, caches cold), counting every SQL
statement the record's connection executes (``Connection.set_trace_callback``) in each part. It
also replays the same statistic reads on a fresh record without the rules, to split the analysis
time into reading the record and the rules' own computation.

Run it::

    python benchmarks/record_analysis.py                       # the sampled layout, 1,000 x 1,000
    python benchmarks/record_analysis.py --grad-norms every-step
    python benchmarks/record_analysis.py --layers 200 --steps 300 --repeats 1   # a quick smoke test

It prints a few lines per layout and always exits 0. Goal (issue 13): analysis under 0.3 s of CPU
(the verdict is on CPU time: on a shared machine the wall time is one to three times it).

The layout is heavier than what `modeldebug run` writes today at ``basic`` for such a model: capture
takes the mean and std of layers with parameters and the dead and zero fractions of ReLU-like layers,
where this writes all seven activation statistics of every Linear layer. It is kept as it was so
that figures stay comparable over time.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from modeldebug.record import Record, RunWriter
from modeldebug.rules import analyze

ACTIVATION_STATS = ("mean", "std", "min", "max", "zero_frac", "nonfinite", "dead_frac")
INPUT_STATS = ("mean", "std", "min", "max", "nonfinite_frac", "const_frac")
LOSS_IO_STATS = ("in_min", "in_max", "in_mean", "in_rowsum_dev", "in_frac_01", "in_nonfinite",
                 "tgt_min", "tgt_max", "tgt_mean")
GOAL_S = 0.3


def sampled(step: int, every: int = 50) -> bool:
    """The basic level's sampling schedule (capture/tracer.py)."""
    return step < 3 or step in (5, 10, 20) or step % every == 0


def build(path: Path, *, layers: int, steps: int, grad_norms: str, seed: int = 0) -> int:
    """Write the synthetic record at `path`; returns the number of stats rows."""
    rng = random.Random(seed)
    w = RunWriter(path)
    w.set_meta(script="deep.py", mode="run", level="basic", status="finished", exit_code=0,
               models=["Deep"], optimizers=["SGD"], device="cpu")
    w.entity("module", "", type="Deep", model="Deep", info={"leaf": False, "params": 0})
    modules, params = [], []
    for i in range(layers):
        modules.append(w.entity("module", f"blocks.{i}", type="Linear", model="Deep",
                                info={"leaf": True, "params": 2}))
        for p, shape in (("weight", [64, 64]), ("bias", [64])):
            params.append(w.entity("param", f"blocks.{i}.{p}", type="float32", model="Deep",
                                   info={"shape": shape, "module": f"blocks.{i}", "requires_grad": True}))
    inp = w.entity("input", "Deep", type="float32", info={"shape": [32, 64]})
    loss_e = w.entity("loss", "cross_entropy", type="cross_entropy",
                      info={"phase": "train", "input_shape": [32, 10], "target_shape": [32]})
    names = [f"blocks.{i}.{p}" for i in range(layers) for p in ("weight", "bias")]
    w.add_event(None, "optimizer", {"type": "SGD", "groups": [{"lr": 0.01, "momentum": 0.9, "params": names}]})
    rows = 0
    depth = [0.5 + 0.5 * j / max(1, len(params) - 1) for j in range(len(params))]
    for step in range(steps):
        loss = 2.3 * math.exp(-step / (steps / 3)) + 0.05 * rng.random()
        is_sampled = sampled(step)
        if is_sampled or grad_norms == "every-step":
            g = [(eid, "grad_norm", d * (0.5 + rng.random())) for eid, d in zip(params, depth)]
            w.add_stats(step, g)
            rows += len(g)
        if is_sampled:
            batch = []
            for eid in modules:
                batch += [(eid, "mean", rng.gauss(0.1, 0.01)), (eid, "std", 1 + rng.random() * 0.1),
                          (eid, "min", -3.0), (eid, "max", 3.0), (eid, "zero_frac", 0.1 * rng.random()),
                          (eid, "nonfinite", 0.0), (eid, "dead_frac", 0.0)]
            for eid in params:
                batch += [(eid, "param_norm", 8 + rng.random()), (eid, "update_ratio", 1e-3 * (0.5 + rng.random()))]
            batch += [(inp, s, v) for s, v in zip(INPUT_STATS, (0.0, 1.0, -3.0, 3.0, 0.0, 0.0))]
            batch += [(loss_e, s, v) for s, v in zip(LOSS_IO_STATS, (-4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 4.5))]
            w.add_stats(step, batch)
            rows += len(batch)
        w.add_step(step, loss=loss, lr=0.01, n_backward=1, grad_norm=1.0 + rng.random(), t_data=1e-4,
                   t_forward=2e-3, t_backward=4e-3, t_optimizer=1e-3, t_step=7e-3, rss_mb=500.0,
                   zero_grad_calls=1, live_losses=0, fwd_eval_mode=0, fwd_train_mode_nograd=0,
                   sampled=is_sampled)
        if step % 20 == 19:
            w.flush()
    w.set_meta(steps=steps, duration_s=7e-3 * steps)
    w.close()
    return rows


def _counting_open(path: Path, counted: list[str]) -> Record:
    """Record.open with every SQL statement of its connection appended to `counted`."""
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(counted.append)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        return Record.open(path)
    finally:
        sqlite3.connect = real_connect  # type: ignore[assignment]


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` timings of opening and analysing the record, statement counts, and the part
    of the analysis spent reading the record (the same reads replayed on a fresh record, no rules)."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        counted: list[str] = []
        t0 = time.perf_counter()
        record = _counting_open(path, counted)
        t_open = time.perf_counter() - t0
        n_open = len(counted)
        counted.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        findings = analyze(record)
        t_analyze, c_analyze = time.perf_counter() - t0, time.process_time() - c0
        n_analyze = len(counted)
        # Which statistics the rules asked for (private: a benchmark's peek; absent before bulk reads).
        read, hists = list(getattr(record, "_frames", {})), list(getattr(record, "_hists", {}))
        record.conn.close()
        fresh = Record.open(path)
        t0 = time.perf_counter()
        for stat, kind in read:
            fresh.frame(stat, kind=kind)
        for kind in hists:
            fresh._read_histograms(kind)
        t_reads = time.perf_counter() - t0
        fresh.conn.close()
        now = {"open_s": t_open, "analyze_s": t_analyze, "analyze_cpu_s": c_analyze, "reads_s": t_reads}
        for k, v in now.items():
            best[k] = min(best.get(k, math.inf), v)
        best.update(open_sql=n_open, analyze_sql=n_analyze, findings=len(findings))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=1000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--grad-norms", choices=["sampled", "every-step", "both"], default="sampled",
                   help="per-parameter gradient norms on sampled steps only, on every step, or both runs")
    p.add_argument("--repeats", type=int, default=3, help="analyses per layout; the best time is printed")
    args = p.parse_args(argv)
    layouts = ["sampled", "every-step"] if args.grad_norms == "both" else [args.grad_norms]
    print(f"record analysis: {args.layers} layers x {args.steps} steps, best of {args.repeats}; goal {GOAL_S} s")
    with tempfile.TemporaryDirectory() as tmp:
        for layout in layouts:
            path = Path(tmp) / f"deep-{layout}.db"
            t0 = time.perf_counter()
            rows = build(path, layers=args.layers, steps=args.steps, grad_norms=layout)
            t_build = time.perf_counter() - t0
            size_mb = path.stat().st_size / 2**20
            m = measure(path, args.repeats)
            verdict = "ok" if m["analyze_cpu_s"] < GOAL_S else "over the goal"
            print(f"  grad norms {layout:10}  {rows:>9,} stats rows  {size_mb:6.1f} MB  built in {t_build:5.1f} s\n"
                  f"    open     {m['open_s']:6.3f} s  {m['open_sql']:3.0f} SQL statements\n"
                  f"    analyze  {m['analyze_s']:6.3f} s  {m['analyze_sql']:3.0f} SQL statements  "
                  f"({m['analyze_cpu_s']:.3f} s CPU; {m['findings']:.0f} findings)  {verdict}\n"
                  f"      of which reading the record {m['reads_s']:.3f} s, the rules themselves "
                  f"{max(0.0, m['analyze_s'] - m['reads_s']):.3f} s")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
