"""How fast does a run record grow for a deep model? Bytes per 10,000 steps of a 500-layer MLP.

Trains a 500-layer MLP (500 blocks of Linear(16, 16) + ReLU, then a Linear head: 1,002 parameter
tensors, 1,001 leaf modules) on CPU with synthetic data, watched by ``modeldebug.watch`` at a level
(``basic`` by default), writing the record to a real SQLite file. It runs twice, for a short and a
long number of steps, and extrapolates linearly to 10,000 steps (the difference between the two
runs is the per-step growth; the short run holds the fixed part: entities, meta, the early samples).

With ``--before REV`` (default: the commit before the record-size work of issue 13) it measures
the same with the modeldebug of that git revision too (exported with ``git archive`` into a
temporary directory and run in a subprocess) and prints the ratio. Goal (issue 13): under 30 MB
per 10,000 steps at ``basic``.

    python benchmarks/record_size.py                       # about 3-5 minutes on 2 cores
    python benchmarks/record_size.py --steps 100,300 --before ''   # quicker, no comparison

It prints a few lines and always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BEFORE = "3725496"  # measures declared, capture still writing per-parameter rows every step
GOAL_MB = 30.0


def worker(steps: int, db: str, level: str, layers: int) -> dict[str, float]:
    """Train `steps` steps watched into `db` (this runs in a subprocess, with either modeldebug)."""
    import torch
    from torch import nn

    import modeldebug

    torch.set_num_threads(1)
    torch.manual_seed(0)
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(16, 16), nn.ReLU()]
    model = nn.Sequential(*blocks, nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
    t0 = time.perf_counter()
    with modeldebug.watch(model, optimizer=opt, db=db, level=level) as session:
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    seconds = time.perf_counter() - t0
    session.writer.close()
    return {"bytes": os.path.getsize(db), "seconds": seconds, **_counts(db)}


def _counts(db: str) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("steps", "stats", "entities")}
    finally:
        conn.close()


def measure(src: Path, steps: int, level: str, layers: int, tmp: Path) -> dict[str, float]:
    """Run the worker in a subprocess with `src` (a modeldebug source tree) first on the path."""
    db = tmp / f"run-{steps}-{src.parent.name}.db"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--worker", str(steps), str(db), level, str(layers)],
                         env=env, capture_output=True, text=True, cwd=tmp, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "worker failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_10k(short: dict[str, float], long: dict[str, float], n_short: int, n_long: int) -> float:
    """Bytes of a 10,000-step record, extrapolated from two runs."""
    slope = (long["bytes"] - short["bytes"]) / (n_long - n_short)
    return short["bytes"] + slope * (10_000 - n_short)


def export(rev: str, tmp: Path) -> Path | None:
    """The `src` folder of git revision `rev`, exported under `tmp` (None if git cannot)."""
    dest = tmp / f"src-{rev}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        steps, db, level, layers = int(argv[1]), argv[2], argv[3], int(argv[4])
        print(json.dumps(worker(steps, db, level, layers)))
        return 0
    p = argparse.ArgumentParser(description="Record bytes per 10,000 steps of a 500-layer MLP.")
    p.add_argument("--level", default="basic", choices=("basic", "detailed", "comprehensive"))
    p.add_argument("--layers", type=int, default=500)
    p.add_argument("--steps", default="150,600", help="the short and the long run, comma-separated")
    p.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare with ('' for none)")
    args = p.parse_args(argv)
    n_short, n_long = (int(s) for s in args.steps.split(","))
    if not 0 < n_short < n_long:
        p.error(f"--steps {args.steps!r}: give a short and a longer run, such as 100,600")
    with tempfile.TemporaryDirectory(prefix="modeldebug-size-") as d:
        tmp = Path(d)
        trees: list[tuple[str, Path]] = [("after (this tree)", ROOT / "src")]
        if args.before:
            src = export(args.before, tmp)
            if src is None:
                print(f"(git revision {args.before!r} not found: no comparison)")
            else:
                trees.insert(0, (f"before ({args.before})", src))
        print(f"{args.layers}-layer MLP, level {args.level}, runs of {n_short} and {n_long} steps, "
              "extrapolated to 10,000 steps")
        sizes = {}
        for label, src in trees:
            short = measure(src, n_short, args.level, args.layers, tmp)
            long = measure(src, n_long, args.level, args.layers, tmp)
            size = per_10k(short, long, n_short, n_long)
            sizes[label] = size
            rows = (long["stats"] - short["stats"]) / (n_long - n_short)
            growth = (long["bytes"] - short["bytes"]) / (n_long - n_short)
            print(f"  {label:<22} {size / 1e6:8.1f} MB per 10,000 steps  ({growth:,.0f} bytes and "
                  f"{rows:,.1f} statistic rows per step; {long['seconds'] / n_long * 1e3:.1f} ms per watched step)")
        after = sizes[trees[-1][0]]
        verdict = "ok" if after / 1e6 < GOAL_MB else "OVER"
        line = f"goal: under {GOAL_MB:.0f} MB ({verdict})"
        if len(sizes) == 2:
            before = sizes[trees[0][0]]
            line += f"; before/after ratio {before / after:.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
