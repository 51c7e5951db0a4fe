"""One report over all ranks: wait for the other ranks' records, diagnose each, merge, judge across ranks.

Rank 0 (or the process that spawned the ranks) waits, bounded, for the other ranks' records to be
closed (their writer's lock released), then diagnoses every record, folds a finding seen on
several ranks into one (which ranks, and each rank's title, in its evidence), adds the
cross-rank findings and ranks everything again. The other ranks print nothing.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from ..catalogue import SEVERITY_ORDER, Finding
from ..config import DebuggingConfig
from ..errors import DebuggingError
from ..record import Record
from ..record.lock import live_writer
from .ranks import rank_from_env, rank_paths
from .rules import cross_rank_findings

__all__ = ["merge_from_rank0", "merged_report", "run_report", "wait_for_records"]

log = logging.getLogger("modeldebug")

WAIT_S = 60.0


def wait_for_records(paths: list[Path], *, timeout: float = WAIT_S, not_before: float | None = None,
                     poll: float = 0.1) -> dict[Path, Record]:
    """Open each record once its writer has finished (or died), waiting at most `timeout` seconds in all.

    A record created before `not_before` (an older job's file under the same name) is not this job's.
    """
    deadline = time.monotonic() + timeout
    found: dict[Path, Record] = {}
    pending = list(paths)
    while pending:
        for p in list(pending):
            if not p.is_file() or live_writer(p) is not None:
                continue
            try:
                rec = Record.open(p)
            except DebuggingError:
                continue  # still being created: try again
            created = rec.meta.get("created") or 0
            if not_before is not None and isinstance(created, (int, float)) and created < not_before:
                continue
            found[p] = rec
            pending.remove(p)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    return found


def _fold(per_rank: dict[int, list[Finding]]) -> list[Finding]:
    """One finding per (code, location), from the lowest rank it fired on, with every rank's detail."""
    merged: dict[tuple[str, str | None], Finding] = {}
    seen: dict[tuple[str, str | None], dict[int, Finding]] = {}
    for rank in sorted(per_rank):
        for f in per_rank[rank]:
            key = (f.code, f.location)
            seen.setdefault(key, {})[rank] = f
            if key not in merged:
                merged[key] = f
    for key, f in merged.items():
        by_rank = seen[key]
        f.evidence["ranks"] = sorted(by_rank)
        if len(by_rank) > 1 or len(per_rank) > 1:
            f.evidence["per_rank"] = {str(r): {"title": g.title, "step": g.step, "severity": g.severity}
                                      for r, g in sorted(by_rank.items())}
            worst = max((g.severity for g in by_rank.values()), key=lambda s: SEVERITY_ORDER[s])
            f.severity = worst
            f.description += (f" Seen on rank{'s' if len(by_rank) > 1 else ''} "
                              f"{', '.join(map(str, sorted(by_rank)))} of {len(per_rank)}.")
    return list(merged.values())


def _ended(record: Record) -> float:
    started, took = record.meta.get("started"), record.meta.get("duration_s")
    if isinstance(started, (int, float)) and isinstance(took, (int, float)):
        return float(started) + float(took)
    return math.inf


def _crashes_in_order(found: list[Finding], records: dict[int, Record]) -> list[Finding]:
    """The crashes (RUN...) of several ranks, the rank that ended first first, in the places the crashes held:
    the first crash is the cause, the others' (a peer that closed the connection, a collective that timed
    out waiting for it) follow from it. Ranking keeps this order between crashes of one severity and step."""
    slots = [i for i, f in enumerate(found) if f.code.startswith("RUN") and f.evidence.get("ranks")]
    if len(slots) < 2:
        return found
    out = list(found)
    crashes = sorted((found[i] for i in slots), key=lambda f: _ended(records[min(f.evidence["ranks"])]))
    for i, f in zip(slots, crashes):
        out[i] = f
    return out


def merged_report(records: dict[int, Record], config: DebuggingConfig | None = None, *,
                  missing: list[int] | None = None) -> Any:
    """The one report over `records` (rank -> record): per-rank findings folded, cross-rank ones added."""
    from ..report import Report
    from ..rules.diagnosis import Diagnosis, diagnose
    from ..rules.ranking import rank

    config = config or DebuggingConfig()
    diagnoses = {k: diagnose(records[k], config) for k in sorted(records)}
    first = diagnoses[min(diagnoses)]
    findings = _crashes_in_order(_fold({k: d.findings for k, d in diagnoses.items()}), records)
    findings += cross_rank_findings(records, config)
    n_steps = max((r.n_steps for r in records.values()), default=0)
    run = dict(first.run)
    run["world_size"] = max([len(records) + len(missing or [])]
                            + [int(r.meta.get("world_size") or 0) for r in records.values()])
    run["ranks"] = [{"rank": k, "record": d.run.get("record"), "steps": d.run.get("steps"),
                     "status": d.run.get("status"), "exit_code": d.run.get("exit_code"),
                     "duration_s": d.run.get("duration_s")} for k, d in diagnoses.items()]
    codes = [d.run.get("exit_code") for d in diagnoses.values() if isinstance(d.run.get("exit_code"), int)]
    if any(codes):
        run["exit_code"] = next(c for c in codes if c)
    run["steps"] = n_steps
    if missing:
        run["ranks_missing"] = missing
        run["status_note"] = (f"No finished record from rank(s) {', '.join(map(str, missing))} within "
                              f"{WAIT_S:.0f} s: the report covers the other ranks.")
    diag = Diagnosis(rank(findings, n_steps), run, config, first.record, first.rules_run)
    return Report.from_diagnosis(diag)


def merge_from_rank0(record: Record, path: Path, world_size: int, config: DebuggingConfig | None = None, *,
                     timeout: float = WAIT_S) -> Any:
    """Rank 0's one report: its own `record` (at `path`) and the other ranks' records beside it."""
    paths = rank_paths(path, world_size)
    started = record.meta.get("started") or record.meta.get("created")
    others = wait_for_records(paths[1:], timeout=timeout,
                              not_before=started - 600 if isinstance(started, (int, float)) else None)
    records = {0: record, **{i + 1: others[p] for i, p in enumerate(paths[1:]) if p in others}}
    missing = [i + 1 for i, p in enumerate(paths[1:]) if p not in others]
    return merged_report(records, config, missing=missing)


def run_report(result: Any, config: DebuggingConfig | None = None, *, timeout: float = WAIT_S) -> Any:
    """The report `modeldebug run` prints for `result`: merged over ranks, None on ranks other than 0.

    - a torchrun (or mpirun, Slurm) rank other than 0: None (it prints nothing);
    - rank 0: waits for the other ranks' records (up to `timeout` s after its own end) and merges;
    - a process that spawned ranks: merges the records its children wrote;
    - anything else: the record's own report.
    """
    from ..report import Report

    record: Record = result.record
    rank = rank_from_env()
    spawned = record.meta.get("rank_records")
    if rank is not None and rank.rank != 0:
        return None
    if rank is not None and result.path is not None:
        return merge_from_rank0(record, Path(result.path), rank.world_size, config, timeout=timeout)
    if isinstance(spawned, list) and spawned:
        paths = [Path(p) for p in spawned]
        found = wait_for_records(paths, timeout=timeout)
        records = {}
        for p, rec in found.items():
            r = rec.meta.get("rank")
            records[int(r) if isinstance(r, int) else paths.index(p)] = rec
        missing = [i for i, p in enumerate(paths) if p not in found]
        if records:
            return merged_report(records, config, missing=missing)
    return Report.from_record(record, config)
