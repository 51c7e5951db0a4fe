"""The NCCL check: the broken/healthy table of the cross-rank rules with backend nccl, on a GPU machine.

    python benchmarks/distributed_nccl_check.py [--launch torchrun,spawn,watch] [--bugs none,params,...]

With 2 or more CUDA GPUs it runs each bug of tests/distributed_scripts/ddp_train.py with
`--backend nccl` (model and batches on `cuda:<local rank>`, `DDP(device_ids=[...])`). NCCL refuses
two ranks on one GPU, so with ONE GPU it runs the table with gloo on that GPU instead (both ranks
on cuda:0): the device-side part of modeldebug (fingerprints stacked on the GPU, copied once) is
checked, NCCL itself is not. It prints the same Markdown table as benchmarks/distributed_rules.py,
then each cell that differs from the expected code, for docs/distributed.md. Nothing in the test
suite needs it. Differences to expect: NCCL
collectives are asynchronous, so in the `hang` bug rank 0 may be stopped at its next
synchronisation (`destroy_process_group`) rather than inside `all_reduce`, and NCCL's own watchdog
may end the process at the timeout (exit code -6) before modeldebug closes its record.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distributed_rules import EXPECTED, run


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--launch", default="torchrun,spawn,watch")
    p.add_argument("--bugs", default=",".join(EXPECTED))
    args = p.parse_args()
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        print("distributed_nccl_check: no CUDA GPU here: run it on a GPU machine", file=sys.stderr)
        return 2
    backend = "nccl" if n >= 2 else "gloo"
    launches = args.launch.split(",")
    version = torch.cuda.nccl.version()
    print(f"backend {backend} on CUDA ({'one GPU: gloo, NCCL not run' if n < 2 else 'one GPU per rank'}); NCCL "
          f"{'.'.join(map(str, version)) if isinstance(version, tuple) else version}, "
          f"{torch.cuda.get_device_name(0)} x {n}, torch {torch.__version__}\n")
    print("| bug | expected | " + " | ".join(launches) + " |")
    print("|---|---|" + "---|" * len(launches))
    differed = []
    with tempfile.TemporaryDirectory() as tmp:
        for bug in args.bugs.split(","):
            cells = []
            for launch in launches:
                codes, took, rc = run(bug, launch, Path(tmp), backend, "cuda")
                dst = [c for c in codes if c.startswith("DST")]
                if dst[:1] != ([EXPECTED[bug]] if EXPECTED[bug] else []):
                    differed.append(f"{bug} under {launch}: {', '.join(codes) or 'none'} (exit {rc})")
                cells.append(f"{', '.join(codes) or 'none'} (exit {rc}, {took:.0f} s)")
            print(f"| {bug} | {EXPECTED[bug] or 'none'} | " + " | ".join(cells) + " |", flush=True)
    print("\nDiffered from the expected code:" if differed else "\nEvery cell gave the expected code.")
    for line in differed:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
