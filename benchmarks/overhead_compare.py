"""Before and after, side by side: `overhead.py` against two modeldebug source trees, alternating.

Runs ``benchmarks/overhead.py`` (this checkout's) as a subprocess with ``PYTHONPATH`` set to the
``--before`` source tree, then to ``--after`` (default: this checkout's ``src``), ``--runs`` times
each, alternating (before, after, before, after), so that the machine's load hits both alike; then
prints one table of watched/plain ratios (median and mean) per model and level, each run in its
own column, with the load average at the start and the end. Make a before tree with, e.g.::

    mkdir -p /tmp/before && git archive <commit> src | tar -x -C /tmp/before
    python benchmarks/overhead_compare.py --before /tmp/before/src -- --models mlp,cnn --clock cpu

Everything after ``--`` goes to overhead.py. Always exits 0.
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

HERE = Path(__file__).resolve().parent


def run_once(src: Path, extra: list[str], out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, str(HERE / "overhead.py"), *extra, "--json", str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def table(results: list[tuple[str, dict]], first: str = "median_s") -> str:
    """Watched/plain ratios per model and level: `first` (the median, or the 10th percentile, which
    a busy machine disturbs least) and the mean (sampled steps included), one column per run."""
    keys = sorted({k for _, r in results for k in r if k != "dynamo" and not k.endswith("/plain")})
    head = f"{'model/level':<30}" + "".join(f"{label:>22}" for label, _ in results)
    what = {"median_s": "median", "p10_s": "p10"}[first]
    lines = [head, f"{'':<30}" + "".join(f"{what + ' / mean':>22}" for _ in results), "-" * len(head)]
    for k in keys:
        model = k.split("/")[0]
        cells = []
        for _, r in results:
            plain, w = r.get(f"{model}/plain"), r.get(k)
            if plain is None or w is None:
                cells.append(f"{'-':>22}")
                continue
            if first not in w or first not in plain:
                cells.append(f"{'-':>22}")
                continue
            cells.append(f"{w[first] / plain[first]:>12.3f}x /{w['mean_s'] / plain['mean_s']:>6.3f}x")
        lines.append(f"{k:<30}" + "".join(cells))
    if first != "median_s":
        return "\n".join(lines)
    dyn = [(label, r.get("dynamo", {})) for label, r in results if r.get("dynamo")]
    for label, d in dyn:
        lines.append(f"dynamo, {label}: " + "; ".join(f"{k} {v['graphs']} graphs, {v['graph_breaks']} breaks, "
                                                       f"{v['recompiles']} recompiles" for k, v in sorted(d.items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, type=Path, help="the source tree (holding modeldebug/) to compare")
    p.add_argument("--after", type=Path, default=HERE.parent / "src")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args(argv)
    results: list[tuple[str, dict]] = []
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for label, src in (("before", args.before), ("after", args.after)):
                out = Path(tmp) / f"{label}-{r}.json"
                run_once(src, extra, out)
                results.append((f"{label} #{r + 1}", json.loads(out.read_text())))
    load1 = os.getloadavg()
    order = [x for x in results if x[0].startswith("before")] + [x for x in results if x[0].startswith("after")]
    print(f"overhead.py {' '.join(extra)}: before={args.before} after={args.after}, {args.runs} runs each, "
          f"alternating; load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table(order))
    print("\n10th percentile of the step times (what a busy machine disturbs least):\n")
    print(table(order, "p10_s"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
