"""The broken/healthy table of the cross-rank rules: each bug of tests/distributed_scripts/ddp_train.py
run under torchrun and under torch.multiprocessing.spawn (`modeldebug run`), and with `modeldebug.watch()`
inside the spawning script (`watch`), 2 ranks on 127.0.0.1, with the DST codes the merged report gave.

    python benchmarks/distributed_rules.py [--launch torchrun,spawn,watch] [--bugs none,params,...]
                                           [--backend gloo|nccl]

`--backend nccl` needs one GPU per rank (benchmarks/distributed_nccl_check.py checks and runs it).

Prints a Markdown table (docs/distributed.md holds the last one).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "distributed_scripts" / "ddp_train.py"
EXPECTED = {"none": "", "params": "DST001", "grads": "DST002", "same_data": "DST003", "order": "DST004",
            "lr": "DST005", "loss": "DST006", "batchnorm": "DST007", "straggler": "DST008", "hang": "DST009"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(bug: str, launch: str, workdir: Path, backend: str = "gloo", device: str = "cpu") -> tuple[list[str], float, int]:
    port = free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "MODELDEBUG_HANG_MIN_S": "1", "PYTHONWARNINGS": "ignore"}
    extra = ["--bug", bug, "--timeout", "4"] + (["--epochs", "3"] if bug == "order" else []) \
        + (["--bn"] if bug == "none" else []) + ["--backend", backend, "--device", device]
    out = workdir / f"{launch}-{bug}.json"
    md = ["-m", "modeldebug", "run", "--json", str(out), "--db", str(workdir / f"{launch}-{bug}.db"), "--", str(SCRIPT)]
    if launch == "watch":  # the script's own modeldebug.watch() on each rank it spawns; rank 0 writes the report
        cmd = [sys.executable, str(SCRIPT), *extra, "--spawn", "2", "--watch", str(workdir / f"{launch}-{bug}.db"),
               "--json", str(out)]
    elif launch == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(port), *md, *extra]
    else:
        cmd = [sys.executable, *md, *extra, "--spawn", "2"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    if not out.exists():
        sys.stderr.write(proc.stderr[-3000:])
        return ["(no report)"], took, proc.returncode
    codes = [f["code"] for f in json.loads(out.read_text())["findings"]]
    return codes, took, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--launch", default="torchrun,spawn")
    p.add_argument("--bugs", default=",".join(EXPECTED))
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    args = p.parse_args()
    launches = args.launch.split(",")
    print("| bug | expected | " + " | ".join(launches) + " |")
    print("|---|---|" + "---|" * len(launches))
    with tempfile.TemporaryDirectory() as tmp:
        for bug in args.bugs.split(","):
            cells = []
            for launch in launches:
                codes, took, rc = run(bug, launch, Path(tmp), args.backend)
                cells.append(f"{', '.join(codes) or 'none'} (exit {rc}, {took:.0f} s)")
            print(f"| {bug} | {EXPECTED[bug] or 'none'} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
