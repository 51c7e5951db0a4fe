"""How often does `modeldebug learn` raise a false alarm when only the seed changes, and does it
still catch the planted changes?

Trains tests/compare_train.py (a 3-layer MLP, Adam, 60 steps) under `modeldebug run` for seeds
0..N-1, and once (seed 0) with each planted change: learning rate x30, layer 2 frozen,
`zero_grad()` removed, layer 2 initialised 6x too wide. Then, for each K in --learn-from, learns
invariants from seeds 0..K-1 and checks every other seed: a held-out healthy run with any
violation is a false alarm. Each planted change must be caught by its own invariant (INV002 for
the learning rate, INV003 frozen, INV004 zero_grad, INV007/INV008 in module '2' at step 0 for the
init), at its first step. Last, `diff` of seed 0 against every other seed: a pair that "parts beyond
noise" is a false parting.

Run it::

    python benchmarks/learn_false_alarms.py                          # 20 seeds, basic and detailed
    python benchmarks/learn_false_alarms.py --seeds 12 --levels basic   # quicker

It prints one line per (level, K) and always exits 0. Measured numbers are in docs/compare.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeldebug.cli import main
from modeldebug.compare.check import violations
from modeldebug.compare.diff import Side, diff_runs
from modeldebug.compare.learn import learn
from modeldebug.journal.facts import record_facts
from modeldebug.record import Record

SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "compare_train.py"
CHANGES = {"lr x30": ["--lr", "0.3"], "frozen layer": ["--freeze", "2"], "no zero_grad": ["--no-zero-grad"],
           "init x6": ["--init-std", "0.6"]}


def caught(name: str, vs: list) -> str:  # type: ignore[type-arg]
    """'yes (INV002 step 0)' when the change's own invariant fired, else what fired first, or 'no'."""
    want = {"lr x30": lambda v: v.invariant.rule == "lr",
            "frozen layer": lambda v: v.invariant.code == "INV003" and v.location == "2",
            "no zero_grad": lambda v: v.invariant.code == "INV004",
            "init x6": lambda v: v.invariant.code in ("INV007", "INV008") and v.location == "2" and v.step == 0}[name]
    hit = next((v for v in vs if want(v)), None)
    if hit is not None:
        return f"yes ({hit.invariant.code} step {hit.step}{' in ' + repr(hit.location) if hit.location else ''})"
    return f"no (first: {vs[0].invariant.code})" if vs else "no"


def train(folder: Path, level: str, name: str, args: list[str]) -> Path:
    db = folder / f"{level}-{name.replace(' ', '_')}.db"
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", "--db", str(db), "-q", "--no-progress", "--level", level, str(SCRIPT), *args])
    if code != 0:
        raise SystemExit(f"{name}: the training script failed ({code})")
    return db


def main_() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20, help="healthy seeds to train (default 20)")
    p.add_argument("--levels", nargs="+", default=["basic", "detailed"], help="capture levels (default basic detailed)")
    p.add_argument("--learn-from", nargs="+", type=int, default=[1, 2, 3], help="runs to learn from (default 1 2 3)")
    args = p.parse_args()
    torch.set_num_threads(1)
    os.environ["MODELDEBUG_JOURNAL"] = "off"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for level in args.levels:
            t0 = time.perf_counter()
            healthy = [train(folder, level, f"seed{s}", ["--seed", str(s)]) for s in range(args.seeds)]
            planted = {n: train(folder, level, n, a) for n, a in CHANGES.items()}
            print(f"[{level}] trained {len(healthy) + len(planted)} runs in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            for k in args.learn_from:
                invs = learn([Record.open(db) for db in healthy[:k]])
                held = healthy[k:]
                alarms, broken, fired = 0, 0, []
                for db in held:
                    vs = violations(Record.open(db), invs)
                    alarms += bool(vs)
                    broken += len({id(v.invariant) for v in vs})
                    fired += [f"{Path(db).stem}: {v.invariant.code} {v.title}" for v in vs[:1]]
                checks = len(invs.invariants) * len(held)
                found = {n: caught(n, violations(Record.open(db), invs)) for n, db in planted.items()}
                print(f"{level:9} learn from {k}: {len(invs.invariants):3} invariants | false alarms "
                      f"{alarms}/{len(held)} runs ({alarms / len(held):.0%}), {broken}/{checks} invariant checks | "
                      + " | ".join(f"{n}: {r}" for n, r in found.items()))
                for line in fired:
                    print(f"    false alarm {line}")
            parted = []
            for db in healthy[1:]:  # diff seed 0 against every other seed: where do they "part"?
                a, b = Record.open(healthy[0]), Record.open(db)
                d = diff_runs(Side("A", record_facts(a) | {"seed": {"torch": 0}}, a),
                              Side("B", record_facts(b) | {"seed": {"torch": -1}}, b))
                if d.partings:
                    parted.append(f"{Path(db).stem}: {d.partings[0].text}")
            print(f"{level:9} diff seed0 vs each other seed: parted beyond noise in {len(parted)}/{len(healthy) - 1} pairs")
            for line in parted:
                print(f"    {line}")


if __name__ == "__main__":
    main_()
