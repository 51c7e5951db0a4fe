"""How much Python an unsampled watched step runs: a count, not a time, so the shared machine's noise
does not move it.

On a CPU a small model's step pays for watching mostly in Python frames and C calls that run cold
(the step's kernels have pushed our objects out of the caches): ~1 µs each, measured. This counts,
with ``sys.setprofile``, the Python function calls and C calls of one unsampled step of the MLP of
`overhead.py`, plain and under ``modeldebug.watch`` at ``basic``, and prints what watching adds:
all calls, and the Python frames of modeldebug itself. Run it against another tree with
``PYTHONPATH=<tree>/src``. Always exits 0.

    python benchmarks/step_calls.py
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as OH  # noqa: E402

import modeldebug  # noqa: E402


def count_step(model_name: str, level: str | None, warmup: int = 30, db: str = ":memory:") -> collections.Counter[str]:
    """Calls made by one unsampled step (the step after `warmup`; with `level`, watched)."""
    b = OH.Bench(model_name)
    session = modeldebug.watch(b.model, optimizer=b.opt, level=level, db=db) if level else None
    if session is not None:
        session.__enter__()
    try:
        for i in range(warmup):
            b.step(i)
        if session is not None:
            assert not session.tracer.sampled(), "the counted step must be an unsampled one"
        calls: collections.Counter[str] = collections.Counter()

        def profile(frame, event, arg):  # type: ignore[no-untyped-def]
            if event == "call":
                calls[f"py:{frame.f_code.co_filename}:{frame.f_code.co_name}"] += 1
            elif event == "c_call":
                calls[f"c:{getattr(arg, '__qualname__', arg)}"] += 1

        sys.setprofile(profile)
        try:
            b.step(warmup)
        finally:
            sys.setprofile(None)
        return calls
    finally:
        if session is not None:
            session.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mlp", choices=sorted(OH.MODELS))
    p.add_argument("--level", default="basic")
    p.add_argument("--show", action="store_true", help="list modeldebug's frames")
    p.add_argument("--db", default=":memory:", help="a record file (as `modeldebug run` writes: the repro bundle is "
                   "armed only with one); default: in memory")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    plain, watched = count_step(args.model, None), count_step(args.model, args.level, db=args.db)
    ours = {k: v for k, v in watched.items() if k.startswith("py:") and "modeldebug" in k}
    added = sum(watched.values()) - sum(plain.values())
    where = "in memory" if args.db == ":memory:" else "to a file"
    print(f"{modeldebug.__file__}: {args.model} at {args.level}, recorded {where}: an unsampled step makes {sum(plain.values())} "
          f"calls plain, {sum(watched.values())} watched (+{added}); modeldebug's own Python frames: "
          f"{sum(ours.values())}")
    if args.show:
        for k, v in sorted(ours.items(), key=lambda kv: -kv[1]):
            print(f"{v:4d}  {k.split('modeldebug/')[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
