"""How long does `modeldebug run` take to reach the script's first line?

Runs, alternately, ``python -c "import torch; runpy.run_path(SCRIPT)"`` (what a training script pays
anyway: it imports torch) and ``python -m modeldebug run SCRIPT``, where SCRIPT's first line prints
the time and ends the process; the difference of the medians is what modeldebug adds before the
script starts (goal of issue 17: at most 0.3 s), in wall time and in the child's CPU time. Python's bytecode cache is kept under a temporary ``PYTHONPYCACHEPREFIX``
(an installed package has its .pyc files; a checkout run with PYTHONDONTWRITEBYTECODE=1 would
recompile modeldebug on every start, about 0.3 s more). The first run of each is not counted.

    python benchmarks/startup.py --runs 7
    python benchmarks/startup.py --llm ollama_chat/llama3.2   # with an LLM asked for (no server needed:
                                                            # its check says so, the run goes on)

Always exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 0.3
# The script ends the process at its first line (os._exit): the child's CPU time is then the CPU
# time spent before it, which other processes on a busy machine barely change (wall time they do).
FIRST = 'import os, sys, time\nsys.stderr.write(f"FIRST {time.time()}\\n")\nsys.stderr.flush()\nos._exit(0)\n'


def first_line(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from starting `cmd` to the script's first line."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"FIRST ([0-9.]+)", p.stderr)
    if m is None:
        raise RuntimeError(f"{cmd} did not reach the script: {p.stderr[-500:]}")
    return float(m.group(1)) - t0, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--llm", default=None, help="also pass --llm MODEL to modeldebug run")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "first.py"
        script.write_text(FIRST)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pyc")
        plain_cmd = [sys.executable, "-c", f"import torch, runpy; runpy.run_path({str(script)!r})"]
        run_cmd = [sys.executable, "-m", "modeldebug", "run", "--db", str(Path(tmp) / "r.db"),
                   *(["--llm", args.llm] if args.llm else []), str(script)]
        plain: list[tuple[float, float]] = []
        watched: list[tuple[float, float]] = []
        for i in range(args.runs + 1):
            a, b = first_line(plain_cmd, env), first_line(run_cmd, env)
            if i:
                plain.append(a)
                watched.append(b)
    for k, what in ((0, "wall"), (1, "CPU")):
        pv, wv = [v[k] for v in plain], [v[k] for v in watched]
        added = statistics.median(wv) - statistics.median(pv)
        print(f"{what:>4}: python + import torch {statistics.median(pv):.2f} s, modeldebug run "
              f"{statistics.median(wv):.2f} s (medians of {len(pv)}): added {added:.2f} s "
              f"({'ok' if added <= GOAL_S else 'over'} the {GOAL_S} s goal)")
    print(f"load average {os.getloadavg()[0]:.2f} (on a busy machine, trust the CPU line)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
