"""Which rank this process is, and where each rank's record goes.

A rank is known from the launcher's environment (torchrun's RANK/WORLD_SIZE, Slurm's
SLURM_PROCID/SLURM_NTASKS, Open MPI's OMPI_COMM_WORLD_*), from `torch.multiprocessing.spawn`'s
process index, or from an initialised `torch.distributed`. Every rank writes its own record,
`<name>.rank<N>.db`, beside the others, so rank 0 can find them all after the job without
talking to the other ranks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RankInfo", "current_rank", "default_base", "job_key", "rank_from_env", "rank_from_group", "rank_path",
           "rank_paths"]

_ENVS = (("RANK", "WORLD_SIZE", "LOCAL_RANK", "torchrun"),
         ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun"),
         ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm"))
_RANK_SUFFIX = re.compile(r"\.rank\d+$")


@dataclass(frozen=True)
class RankInfo:
    """One process of a distributed job."""

    rank: int
    world_size: int
    local_rank: int
    launcher: str  # torchrun, spawn, mpirun, slurm, init_process_group

    def meta(self) -> dict[str, Any]:
        """What the record's meta says about the rank."""
        return {"rank": self.rank, "world_size": self.world_size, "local_rank": self.local_rank,
                "launcher": self.launcher}


def _int(env: Mapping[str, str], name: str) -> int | None:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        return None


def rank_from_env(env: Mapping[str, str] | None = None) -> RankInfo | None:
    """This process's rank from the launcher's environment; None for a one-process run."""
    env = os.environ if env is None else env
    for rank_var, world_var, local_var, launcher in _ENVS:
        rank, world = _int(env, rank_var), _int(env, world_var)
        if rank is None or world is None or world < 2 or not 0 <= rank < world:
            continue
        local = _int(env, local_var)
        return RankInfo(rank, world, rank if local is None else local, launcher)
    return None


def rank_from_group() -> RankInfo | None:
    """This process's rank in an initialised default process group of 2 or more; None otherwise."""
    try:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return None
        world, rank = dist.get_world_size(), dist.get_rank()
    except Exception:  # noqa: BLE001 - a half-built group is no rank we can trust
        return None
    if world < 2 or not 0 <= rank < world:
        return None
    local = _int(os.environ, "LOCAL_RANK")
    return RankInfo(rank, world, rank if local is None else local, "init_process_group")


def current_rank() -> RankInfo | None:
    """The launcher's rank, else the process group's (a script that started its ranks itself)."""
    return rank_from_env() or rank_from_group()


def job_key(env: Mapping[str, str] | None = None) -> str:
    """A name every rank of one job computes alike, without talking to the others.

    torchrun's run id when it set one; else the launcher's pid (all ranks of one torchrun or
    mpirun job share their parent) and the rendezvous port.
    """
    env = os.environ if env is None else env
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:40]
    if "SLURM_JOB_ID" in env:
        return f"slurm{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', '0')}"
    return f"job{os.getppid()}-{env.get('MASTER_PORT', '0')}"


def rank_path(base: str | Path, rank: int) -> Path:
    """`run.db` -> `run.rank3.db` (a base that already names a rank is replaced)."""
    p = Path(base)
    stem = _RANK_SUFFIX.sub("", p.stem if p.suffix == ".db" else p.name)
    return p.with_name(f"{stem}.rank{rank}.db")


def rank_paths(base: str | Path, world_size: int) -> list[Path]:
    """Every rank's record path, rank 0 first."""
    return [rank_path(base, r) for r in range(world_size)]


def default_base(name: str, *, root: str | Path = ".") -> Path:
    """Where a job's records go when no --db is given: `.modeldebug/runs/<name>-<job>.db` (ranks beside it)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "run"
    return Path(root) / ".modeldebug" / "runs" / f"{safe}-{job_key()}.db"
