"""One report over all ranks: wait for the other ranks' records, diagnose each, merge, judge across ranks.

Rank 0 (or the process that spawned the ranks) waits, bounded, for the other ranks' records to be
closed (their writer's lock released), then diagnoses every record, folds a finding seen on
several ranks into one (which ranks, and each rank's title, in its evidence), adds the
cross-rank findings and ranks everything again. The other ranks print nothing.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import Any

from ..catalogue import SEVERITY_ORDER, Finding
from ..config import DebuggingConfig
from ..errors import DebuggingError
from ..record import Record
from ..record.lock import live_writer
from .ranks import rank_from_env, rank_paths
from .rules import RankRun, cross_rank_findings

__all__ = ["merge_from_rank0", "merged_report", "run_report", "wait_for_records"]

log = logging.getLogger("modeldebug")

WAIT_S = 60.0
#: the wait when this rank itself did not end normally: the other ranks may be blocked in a collective
#: waiting for it, and only this process's exit (which closes its connections) lets them end
CRASH_WAIT_S = 5.0


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


def _spread_by_ddp(found: list[Finding], records: dict[int, Record]) -> None:
    """A NaN made on one rank reaches every rank through DDP's gradient all-reduce: there the gradients turn
    non-finite while the loss stays finite, and NUM001 on its own blames an operation with an infinite
    derivative. Such a finding is made a symptom of the rank whose loss went non-finite first (ranking folds it)."""
    if not any(RankRun(k, r).model.get("ddp") for k, r in records.items()):
        return
    made = [f for f in found if f.kind == "nonfinite" and f.evidence.get("value") == "loss" and f.step is not None]
    for f in found:
        if f.kind != "nonfinite" or f.evidence.get("value") != "gradient" or f.step is None:
            continue
        ranks = set(f.evidence.get("ranks") or ())
        cause = next((c for c in sorted(made, key=lambda c: c.step) if c.step <= f.step
                      and not ranks & set(c.evidence.get("ranks") or ())), None)
        if cause is None:
            continue
        source = ", ".join(map(str, cause.evidence.get("ranks") or ()))
        f.evidence["spread_from_ranks"] = cause.evidence.get("ranks")
        f.description += (f" The loss of rank(s) {source} went non-finite at step {cause.step}: "
                          "DistributedDataParallel's gradient all-reduce averaged its NaN/Inf into these gradients.")
        if "nonfinite" not in (cause.evidence.get("explains") or []):
            cause.evidence["explains"] = [*(cause.evidence.get("explains") or []), "nonfinite"]
            cause.description += (" DistributedDataParallel's gradient all-reduce carried the non-finite gradients "
                                  "to the other ranks, whose own loss stayed finite.")


#: what a rank's collective says when its peer left or never came: the end of a hang, not its cause
_PEER_GONE = re.compile(r"Connection (closed|reset) by peer|Broken pipe|timed out|timeout|"
                        r"ProcessGroupGloo|NCCL (error|communicator was aborted)|Socket", re.IGNORECASE)


def _hang_before_its_crashes(ranked: list[Finding]) -> list[Finding]:
    """A hang (DST009) comes before the crashes it ended in: the ranks whose collective then failed because
    the peer had left or never came ("Connection closed by peer", a timeout). Crashes are never folded
    (they are what the user saw last), so the hang is moved ahead of them and says how the job ended."""
    hang = next((f for f in ranked if f.code == "DST009"), None)
    if hang is None:
        return ranked
    ended = [f for f in ranked if f.code.startswith("RUN") and _PEER_GONE.search(
        f"{f.title} {f.description} {f.evidence.get('message', '')}")]
    if not ended or ranked.index(hang) < min(ranked.index(f) for f in ended):
        return ranked
    out = [f for f in ranked if f is not hang]
    out.insert(min(out.index(f) for f in ended), hang)
    ranks = sorted({r for f in ended for r in (f.evidence.get("ranks") or [])})
    hang.description += (f" The job then ended in the collective's failure on rank(s) {', '.join(map(str, ranks))} "
                         "(the peer had left or never came), listed after this finding." if ranks else
                         " The job then ended in the collective's failure, listed after this finding.")
    return out


def merged_report(records: dict[int, Record], config: DebuggingConfig | None = None, *,
                  missing: list[int] | None = None, waited: float = WAIT_S, rank0_failed: bool = False) -> Any:
    """The one report over `records` (rank -> record): per-rank findings folded, cross-rank ones added."""
    from ..report import Report
    from ..rules.diagnosis import Diagnosis, diagnose
    from ..rules.ranking import rank

    config = config or DebuggingConfig()
    diagnoses = {k: diagnose(records[k], config) for k in sorted(records)}
    first = diagnoses[min(diagnoses)]
    findings = _crashes_in_order(_fold({k: d.findings for k, d in diagnoses.items()}), records)
    _spread_by_ddp(findings, records)
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
                              f"{waited:.0f} s: the report covers the other ranks.")
        if rank0_failed:
            run["status_note"] += (" Rank 0 did not end normally: a rank waiting for it in a collective ends only "
                                   "when rank 0's process exits; read that rank's own record afterwards "
                                   "(modeldebug report <record>.rank<N>.db).")
    diag = Diagnosis(_hang_before_its_crashes(rank(findings, n_steps)), run, config, first.record, first.rules_run)
    return Report.from_diagnosis(diag)


def merge_from_rank0(record: Record, path: Path, world_size: int, config: DebuggingConfig | None = None, *,
                     timeout: float = WAIT_S) -> Any:
    """Rank 0's one report: its own `record` (at `path`) and the other ranks' records beside it.

    When rank 0 failed by itself (crashed, interrupted, a non-zero exit, with no stall of its own seen by
    the watchdog before), the others are likely blocked in a collective that waits for it and end only
    when this process exits: the wait is then `CRASH_WAIT_S`, for the ranks that ended by themselves,
    not a deadlock of `timeout` seconds. A rank 0 that failed after waiting for the others (a
    collective's timeout) still waits `timeout` for them.
    """
    paths = rank_paths(path, world_size)
    started = record.meta.get("started") or record.meta.get("created")
    failed = record.meta.get("status") not in (None, "running", "finished") or record.meta.get("exit_code") not in (
        None, 0)
    on_its_own = failed and not record.events("dist_hang")  # not after waiting for the others (a stall first)
    if on_its_own:
        timeout = min(timeout, CRASH_WAIT_S)
    others = wait_for_records(paths[1:], timeout=timeout,
                              not_before=started - 600 if isinstance(started, (int, float)) else None)
    records = {0: record, **{i + 1: others[p] for i, p in enumerate(paths[1:]) if p in others}}
    missing = [i + 1 for i, p in enumerate(paths[1:]) if p not in others]
    return merged_report(records, config, missing=missing, waited=timeout, rank0_failed=on_its_own)


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
