"""`modeldebug.watch()` inside a distributed script: this rank's record, its cross-rank checks, one report.

`capture.session` calls three functions, each a no-op outside a distributed job:
- `rank_db` (in `__init__`): the record of rank N is `<db>.rank<N>.db` (default
  `.modeldebug/runs/<model>-<job>.rank<N>.db`), rank and world size in its meta;
- `start_rank_watch` / `stop_rank_watch`: this rank's `DistWatch` while the session is open
  (fingerprints, timings, samplers, collectives, the hang watchdog);
- `session_report`: after the session closed, rank 0's `report()` waits (bounded) for the other
  ranks' records and returns ONE report over all ranks (cross-rank DST rules, per-rank detail);
  another rank's `report()` is its own record's report, so a script that prints on every rank
  still runs (guard the print with `if rank == 0` for one report).

The rank comes from the launcher's environment (torchrun, mpirun, Slurm) or, for ranks a script
started itself (`torch.multiprocessing.spawn`, Lightning, Accelerate), from the initialised
process group: enter `watch()` after `init_process_group` there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ranks import current_rank

if TYPE_CHECKING:
    from ..config import DebuggingConfig
    from ..record import RunWriter
    from .watch import DistWatch

__all__ = ["session_report", "start_rank_watch", "stop_rank_watch"]

log = logging.getLogger("modeldebug")


def start_rank_watch(writer: RunWriter, path: Path | None, config: DebuggingConfig) -> DistWatch | None:
    """This rank's `DistWatch`, attached; None outside a distributed job or when it cannot attach."""
    rank = current_rank()
    if rank is None:
        return None
    from .watch import DistWatch

    try:
        return DistWatch(writer, rank, record_path=path, config=config).attach()
    except Exception as exc:  # noqa: BLE001 - the user's training goes on without the cross-rank checks
        log.warning("modeldebug: cross-rank checks are off: %s", exc)
        return None


def stop_rank_watch(dist: DistWatch | None) -> None:
    """Detach `dist` (every hook and patch), writing what it holds; never raises."""
    if dist is None:
        return
    try:
        dist.detach()
    except Exception as exc:  # noqa: BLE001 - the session must still close its record
        log.warning("modeldebug: cross-rank checks did not stop cleanly: %s", exc)
    dist.ended = True


def session_report(session: Any, config: DebuggingConfig) -> Any:
    """The report of a closed watch session on one rank: merged over all ranks on rank 0."""
    from ..report import Report
    from .merge import merge_from_rank0

    dist: DistWatch | None = getattr(session, "dist", None)
    rank = dist.rank if dist is not None else None
    if rank is None or rank.rank != 0 or not getattr(dist, "ended", False) or session.path is None:
        return Report.from_record(session.record, config)
    return merge_from_rank0(session.record, Path(session.path), rank.world_size, config)
