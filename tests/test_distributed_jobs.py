"""Real 2-rank gloo jobs on 127.0.0.1: torchrun and torch.multiprocessing.spawn under `modeldebug run`, and
`modeldebug.watch()` inside a spawning script; one merged report; a hang."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "distributed_scripts" / "ddp_train.py"
pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job(tmp_path: Path, launch: str, *script_args: str, hang_min_s: str = "10") -> tuple[subprocess.CompletedProcess[str], dict]:
    port = _port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "MODELDEBUG_HANG_MIN_S": hang_min_s, "PYTHONWARNINGS": "ignore"}
    md = ["-m", "modeldebug", "run", "--json", "out.json", "--db", "run.db", "--", str(SCRIPT), *script_args]
    if launch == "watch":  # no `modeldebug run`: the script's own watch() on every rank it spawns
        cmd = [sys.executable, str(SCRIPT), *script_args, "--spawn", "2", "--watch", "run.db", "--json", "out.json"]
    elif launch == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(port), *md]
    else:
        cmd = [sys.executable, *md, "--spawn", "2"]
    proc = subprocess.run(cmd, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    out = tmp_path / "out.json"
    assert out.exists(), proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_torchrun_healthy_job_one_report_over_both_ranks(tmp_path: Path) -> None:
    proc, report = _job(tmp_path, "torchrun", "--bn")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [f["code"] for f in report["findings"] if f["code"].startswith("DST")] == []
    run = report["run"]
    assert run["world_size"] == 2 and [r["rank"] for r in run["ranks"]] == [0, 1]
    assert all(r["status"] == "finished" and r["steps"] == 16 for r in run["ranks"])
    assert proc.stderr.count("Run record:") == 1  # rank 1 printed no report
    assert sorted(p.name for p in tmp_path.glob("run.rank*.db")) == ["run.rank0.db", "run.rank1.db"]


def test_torchrun_weights_changed_on_one_rank_after_ddp(tmp_path: Path) -> None:
    _, report = _job(tmp_path, "torchrun", "--bug", "params")
    f = next(f for f in report["findings"] if f["code"] == "DST001")
    assert f["step"] == 1 and f["location"] == "0" and f["evidence"]["ranks_differing_from_rank0"] == [1]
    assert f["recommendations"][0]["type"] == "fix"


def test_spawned_ranks_with_no_sync_left_on(tmp_path: Path) -> None:
    proc, report = _job(tmp_path, "spawn", "--bug", "grads")
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = [f["code"] for f in report["findings"]]
    assert codes[0] == "DST002", codes  # the cause first, the diverged weights folded in
    f = report["findings"][0]
    assert f["evidence"]["no_sync_active_at_steps"] and "DST001" in [s["code"] for s in f["evidence"]["symptoms"]]
    assert report["run"]["world_size"] == 2


def test_hang_watchdog_names_the_collective_rank_1_skipped(tmp_path: Path) -> None:
    proc, report = _job(tmp_path, "torchrun", "--bug", "hang", "--timeout", "4", hang_min_s="1")
    assert proc.returncode != 0  # gloo's timeout ends rank 0's wait, as it would have without us
    assert "modeldebug [rank 0]: no training step finished" in proc.stderr
    assert "waiting in torch.distributed.all_reduce (call 1 of all_reduce" in proc.stderr
    assert "ddp_train.py:" in proc.stderr and "main thread stack" in proc.stderr
    f = next(f for f in report["findings"] if f["code"] == "DST009")
    assert f["evidence"]["ranks_with_fewer_calls"] == ["1"] and f["location"].startswith("ddp_train.py:")


def test_a_rank_with_one_batch_more_waits_in_ddps_all_reduce_and_it_is_named(tmp_path: Path) -> None:
    # DDP's gradient all-reduce runs in C++: no Python collective is entered, the stack says backward()
    proc, report = _job(tmp_path, "torchrun", "--bug", "uneven", "--timeout", "4", hang_min_s="1")
    assert proc.returncode != 0
    assert "inside backward(), where DistributedDataParallel all-reduces the gradients" in proc.stderr
    f = next(f for f in report["findings"] if f["code"] == "DST009")
    assert "gradient all-reduce" in f["title"] and "join()" in f["recommendations"][0]["implementation"]
    codes = [f["code"] for f in report["findings"]]  # the hang first, the collective's failure it ended in after
    assert all(codes.index("DST009") < i for i, c in enumerate(codes) if c.startswith("RUN")), codes


def test_watch_inside_a_spawning_script_healthy_one_report_over_both_ranks(tmp_path: Path) -> None:
    proc, report = _job(tmp_path, "watch", "--bn")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [f["code"] for f in report["findings"] if f["code"].startswith("DST")] == []
    run = report["run"]
    assert run["world_size"] == 2 and [r["rank"] for r in run["ranks"]] == [0, 1]
    assert all(r["status"] == "finished" and r["steps"] == 16 for r in run["ranks"])
    assert sorted(p.name for p in tmp_path.glob("run.rank*.db")) == ["run.rank0.db", "run.rank1.db"]
    from modeldebug.record import Record

    meta = Record.open(tmp_path / "run.rank1.db").meta
    assert (meta["rank"], meta["world_size"], meta["launcher"]) == (1, 2, "init_process_group")
    own = json.loads((tmp_path / "out.json.rank1").read_text())  # rank 1's report() is its own record's
    assert "ranks" not in own["run"] and not any(f["code"].startswith("DST") for f in own["findings"])


def test_watch_inside_a_spawning_script_finds_weights_changed_on_one_rank(tmp_path: Path) -> None:
    # every other bug under watch(): benchmarks/distributed_rules.py --launch watch (docs/distributed.md)
    proc, report = _job(tmp_path, "watch", "--bug", "params")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [f["code"] for f in report["findings"] if f["code"].startswith("DST")] == ["DST001"]
    assert report["run"]["world_size"] == 2


def test_spawned_rank_ended_by_sigterm_closes_its_record_and_the_hang_is_named(tmp_path: Path) -> None:
    # rank 0 fails at gloo's timeout; spawn then ends rank 1 (asleep) with SIGTERM: its record is closed first
    proc, report = _job(tmp_path, "spawn", "--bug", "hang", "--timeout", "4", hang_min_s="1")
    assert proc.returncode != 0
    assert [(r["rank"], r["status"], r["steps"]) for r in report["run"]["ranks"]] == [(0, "crashed", 16),
                                                                                      (1, "terminated", 16)]
    f = next(f for f in report["findings"] if f["code"] == "DST009")
    assert f["evidence"]["ranks_with_fewer_calls"] == ["1"]
