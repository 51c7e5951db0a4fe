"""Lightning (strategy="ddp", 2 CPU processes) and Accelerate (torchrun, 2 CPU processes), both on gloo:
every rank writes its own record, rank 0 writes one report over both ranks with the cross-rank rules;
a healthy twin and one real cross-rank bug each."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modeldebug.record import Record

SCRIPTS = Path(__file__).parent / "distributed_scripts"
# Each job starts 2-3 Python processes that import torch and Lightning or Accelerate: 10-30 s on 2 cores.
pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_port()), "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _dst(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"] if f["code"].startswith("DST")]


def _both_ranks(report: dict, records: Path) -> None:
    run = report["run"]
    assert run["world_size"] == 2 and [r["rank"] for r in run["ranks"]] == [0, 1]
    assert all(r["status"] == "finished" and r["steps"] == 8 for r in run["ranks"])
    assert sorted(p.name for p in records.glob("run.rank*.db")) == ["run.rank0.db", "run.rank1.db"]
    assert Record.open(records / "run.rank1.db").meta["world_size"] == 2


# -- Lightning: ModelDebugCallback under strategy="ddp" ------------------------------------------------
@pytest.mark.parametrize(("bug", "codes"), [("none", []), ("lr", ["DST005"])])
def test_lightning_ddp_every_rank_watched_one_report(tmp_path: Path, bug: str, codes: list[str]) -> None:
    pytest.importorskip("lightning.pytorch", reason="needs the lightning extra")
    _run([sys.executable, str(SCRIPTS / "lightning_ddp.py"), "out", "--bug", bug], tmp_path)
    out = tmp_path / "out" / "modeldebug"
    assert sorted(p.name for p in out.glob("report*")) == ["report.json"]  # rank 1 wrote no report
    report = json.loads((out / "report.json").read_text())
    assert _dst(report) == codes
    _both_ranks(report, out)


# -- Accelerate: watch() inside a script torchrun starts ----------------------------------------------
@pytest.mark.parametrize(("bug", "codes"), [("none", []), ("batchnorm", ["DST007"])])
def test_accelerate_under_torchrun_with_watch(tmp_path: Path, bug: str, codes: list[str]) -> None:
    pytest.importorskip("accelerate", reason="needs accelerate")
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
          "--master-port", str(_port()), str(SCRIPTS / "accelerate_train.py"), "--watch", "run.db", "--json",
          "out.json", "--bug", bug], tmp_path)
    report = json.loads((tmp_path / "out.json").read_text())
    assert _dst(report) == codes
    _both_ranks(report, tmp_path)
