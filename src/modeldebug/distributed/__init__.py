"""Distributed training: per-rank records, cross-rank rules, the hang watchdog.

- `ranks`: which rank this process is (torchrun, mpirun, Slurm, spawn), record names per rank;
- `watch`: `DistWatch`, this rank's own hooks (fingerprints, timings, collectives, samplers);
- `spawn`: ranks started with `torch.multiprocessing.spawn` watch themselves;
- `watchdog`: notices when steps stop and prints where each rank waits;
- `rules`: the cross-rank rules (DST001...), pure: records in, findings out;
- `in_watch`: `modeldebug.watch()` inside a distributed script (per-rank record, one report);
- `merge`: rank 0 waits for the other ranks' records and makes one report.

Nothing is communicated between ranks during training: the records are compared afterwards.
See docs/distributed.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .in_watch import session_report, start_rank_watch, stop_rank_watch
from .ranks import (
    RankInfo,
    current_rank,
    default_base,
    rank_from_env,
    rank_path,
    rank_paths,
)

__all__ = ["RankInfo", "cross_rank_findings", "current_rank", "merged_report", "rank_db", "rank_from_env",
           "rank_path", "rank_paths", "run_report", "session_report", "start_rank_watch", "start_watch",
           "stop_rank_watch"]


def rank_db(db: str | Path | None, name: str) -> str | Path | None:
    """The record path of this rank (`<db or default>.rank<N>.db`), or `db` unchanged outside a distributed job.

    The rank is the launcher's (torchrun, mpirun, Slurm) or the initialised process group's.
    """
    rank = current_rank()
    if rank is None or db == ":memory:":
        return db
    base = Path(db) if db is not None else default_base(name)
    base.parent.mkdir(parents=True, exist_ok=True)
    return rank_path(base, rank.rank)


class _Off:
    def detach(self) -> None:
        """Nothing was attached."""


def start_watch(writer: Any, record_path: Path | None, config: Any) -> Any:
    """Attach this process's `DistWatch` (detach it when the run ends); a failure to attach never stops the run."""
    from .watch import DistWatch

    try:
        return DistWatch(writer, rank_from_env(), record_path=record_path, config=config).attach()
    except Exception as exc:  # noqa: BLE001 - the user's training goes on without the cross-rank checks
        logging.getLogger("modeldebug").warning("modeldebug: cross-rank checks are off: %s", exc)
        return _Off()


def cross_rank_findings(*args: Any, **kwargs: Any) -> Any:
    """See `modeldebug.distributed.rules.cross_rank_findings`."""
    from .rules import cross_rank_findings as run

    return run(*args, **kwargs)


def merged_report(*args: Any, **kwargs: Any) -> Any:
    """See `modeldebug.distributed.merge.merged_report`."""
    from .merge import merged_report as run

    return run(*args, **kwargs)


def run_report(*args: Any, **kwargs: Any) -> Any:
    """See `modeldebug.distributed.merge.run_report`."""
    from .merge import run_report as run

    return run(*args, **kwargs)
