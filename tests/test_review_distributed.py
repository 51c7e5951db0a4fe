"""Review of distributed support: real 2-rank gloo jobs on 127.0.0.1, each rank a `modeldebug run` process
with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR...), or `watch()` on ranks started with spawn."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ranks(tmp_path: Path, script: str, *, timeout: float = 150) -> list[subprocess.CompletedProcess[str]]:
    """Both ranks of a torchrun-like job, each `python -m modeldebug run --json out.json -- train.py`."""
    (tmp_path / "train.py").write_text(textwrap.dedent(script))
    port, job = _port(), f"review{os.getpid()}{time.monotonic_ns()}"
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": job, "OMP_NUM_THREADS": "1",
               "MODELDEBUG_HANG_MIN_S": "60", "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, "-m", "modeldebug", "run", "--no-progress", "--json", "out.json", "--", "train.py"]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    done = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def test_rank0_crash_does_not_keep_the_other_rank_waiting_for_the_report(tmp_path: Path) -> None:
    """Rank 0 raises while rank 1 is already in DDP's gradient all-reduce, waiting for it (gloo timeout 120 s).
    Rank 1 can only end when rank 0's process exits; rank 0 used to wait 60 s for rank 1's record first."""
    r0, r1 = _ranks(tmp_path, """
        import os, time
        from datetime import timedelta
        import torch, torch.distributed as dist
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel as DDP
        torch.set_num_threads(1)
        rank = int(os.environ["RANK"])
        dist.init_process_group("gloo", timeout=timedelta(seconds=120))
        torch.manual_seed(0)
        ddp = DDP(nn.Linear(4, 1))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        for step in range(4):
            if rank == 0 and step == 2:
                open("crashed_at", "w").write(repr(time.time()))
                raise ValueError("bad batch on rank 0")
            opt.zero_grad()
            ddp(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
        """)
    assert r0.returncode == 1 and "ValueError: bad batch on rank 0" in r0.stderr, r0.stderr[-3000:]
    assert r1.returncode != 0  # its all-reduce failed once rank 0 was gone, as without modeldebug
    waited = (tmp_path / "out.json").stat().st_mtime - float((tmp_path / "crashed_at").read_text())
    assert waited < 30, f"rank 0 waited {waited:.0f} s for a rank that was waiting for it"
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["findings"][0]["code"].startswith("RUN") and "ValueError" in report["findings"][0]["title"]
    assert report["run"]["world_size"] == 2 and report["run"]["ranks_missing"] == [1]
    assert "Rank 0 did not end normally" in report["run"]["status_note"]


def test_nan_data_on_one_rank_is_the_cause_not_the_gradients_ddp_averaged_into_the_others(tmp_path: Path) -> None:
    """Rank 1's batch holds NaN at step 2; DDP averages its NaN gradients into rank 0's, whose loss is finite.
    Rank 0's NUM001 ("an operation whose derivative is infinite sits in or after this module") is a symptom."""
    r0, _ = _ranks(tmp_path, """
        import os
        import torch, torch.distributed as dist
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel as DDP
        torch.set_num_threads(1)
        rank = int(os.environ["RANK"])
        dist.init_process_group("gloo")
        torch.manual_seed(0)
        ddp = DDP(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(rank)
        for step in range(6):
            x = torch.randn(8, 4, generator=g)
            if rank == 1 and step >= 2:
                x[0, 0] = float("nan")  # one bad sample in this rank's shard
            opt.zero_grad()
            ddp(x).pow(2).mean().backward()
            opt.step()
        dist.barrier()
        dist.destroy_process_group()
        """)
    assert r0.returncode == 0, r0.stderr[-3000:]
    findings = json.loads((tmp_path / "out.json").read_text())["findings"]
    nonfinite = [f for f in findings if f["kind"] == "nonfinite"]
    assert [(f["location"], f["evidence"]["ranks"]) for f in nonfinite] == [("input batch", [1])], \
        [(f["title"], f["evidence"].get("ranks")) for f in nonfinite]
    cause = nonfinite[0]
    assert findings[0] is cause and cause["step"] == 2
    assert [(s["code"], s["step"]) for s in cause["evidence"]["symptoms"]] == [("NUM001", 2)]
    assert "while the loss was finite" in cause["evidence"]["symptoms"][0]["title"]


def test_a_nan_made_on_one_rank_of_a_ddp_model_with_buffers_does_not_hang_the_job(tmp_path: Path) -> None:
    """Without modeldebug this job runs to its end (the loss is NaN from step 2); NUM001's replay must not add a
    collective on rank 1 only."""
    r0, r1 = _ranks(tmp_path, """
        import os
        from datetime import timedelta
        import torch, torch.distributed as dist
        from torch import nn
        from torch.nn.parallel import DistributedDataParallel as DDP

        class Sqrt(nn.Module):
            def forward(self, x):
                return torch.sqrt(x)

        torch.set_num_threads(1)
        rank = int(os.environ["RANK"])
        dist.init_process_group("gloo", timeout=timedelta(seconds=8))
        torch.manual_seed(0)
        ddp = DDP(nn.Sequential(Sqrt(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(rank)
        for step in range(5):
            x = torch.randn(8, 4, generator=g).abs()
            if rank == 1 and step == 2:
                x = -x  # sqrt of negatives: NaN made inside the model, on this rank only
            opt.zero_grad()
            ddp(x).pow(2).mean().backward()
            opt.step()
        dist.barrier()
        dist.destroy_process_group()
        """)
    assert (r0.returncode, r1.returncode) == (0, 0), (r0.stderr[-2000:], r1.stderr[-2000:])
    codes = [f["code"] for f in json.loads((tmp_path / "out.json").read_text())["findings"]]
    assert "DST009" not in codes and "RUN006" not in codes


def test_watch_entered_before_init_process_group_on_spawned_ranks_does_not_stop_a_rank(tmp_path: Path) -> None:
    """Each spawned rank enters `watch(db="run.db")` before the process group exists, so none knows its rank:
    the second writes beside the first (run.pid<N>.db) and says so, instead of dying with RecordBusyError."""
    (tmp_path / "job.py").write_text(textwrap.dedent("""
        import os, time
        import torch, torch.distributed as dist, torch.multiprocessing as mp
        import modeldebug as md

        def work(rank, port):
            torch.set_num_threads(1)
            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            time.sleep(0.5 * rank)  # rank 0 claims run.db first
            with md.watch(model, optimizer=opt, db="run.db"):
                dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
                for _ in range(3):
                    opt.zero_grad()
                    model(torch.randn(8, 4)).pow(2).mean().backward()
                    opt.step()
                dist.barrier()
                dist.destroy_process_group()
            print(f"rank {rank} done", flush=True)

        if __name__ == "__main__":
            mp.spawn(work, args=(int(os.environ["PORT"]),), nprocs=2)
        """))
    env = {**os.environ, "PORT": str(_port()), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 done" in proc.stdout and "rank 1 done" in proc.stdout
    assert (tmp_path / "run.db").is_file() and len(list(tmp_path.glob("run.pid*.db"))) == 1
    said = [line for line in proc.stderr.splitlines() if "is being written by process" in line]
    assert len(said) == 1 and "run.pid" in said[0], proc.stderr[-2000:]
