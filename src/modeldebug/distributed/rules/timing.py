"""Time and progress across ranks: stragglers (DST008), hangs (DST009), uneven step counts (DST010)."""

from __future__ import annotations

import statistics
from typing import Any

from ...catalogue import CATALOGUE, Finding, Recommendation
from .base import RankRun, common_steps

__all__ = ["hangs", "straggler", "uneven_steps"]


def straggler(runs: list[RankRun]) -> list[Finding]:
    best: tuple[float, int, str, dict[str, Any]] | None = None
    for phase in ("data", "forward", "step"):
        steps, data = common_steps(runs, lambda r, ph=phase: r.times[ph])
        steps = [s for s in steps[2:] if all(data[r.rank][s] is not None for r in runs)]  # skip warm-up
        if len(steps) < 5:
            continue
        for r in runs:
            excess, slower = [], 0
            for s in steps:
                others = statistics.median(data[o.rank][s] for o in runs if o.rank != r.rank)
                mine = data[r.rank][s]
                excess.append(mine - others)
                slower += mine > 1.5 * others + 0.002
            med_excess = statistics.median(excess)
            step_med = statistics.median(data[r.rank][s] for s in steps) if phase != "step" else None
            total = statistics.median(r.times["step"][s] or 0.0 for s in steps)
            if slower >= 0.7 * len(steps) and med_excess > 0.005 and med_excess > 0.1 * total:
                ev = {"rank": r.rank, "phase": phase, "steps_compared": len(steps), "steps_slower": slower,
                      "median_excess_s": round(med_excess, 6), "median_step_s": round(total, 6),
                      "median_phase_s_by_rank": {str(o.rank): round(statistics.median(data[o.rank][s] for s in steps), 6)
                                                 for o in runs}}
                if step_med is not None:
                    ev["median_phase_s"] = round(step_med, 6)
                if best is None or med_excess > best[0]:
                    best = (med_excess, r.rank, phase, ev)
    if best is None:
        return []
    excess, rank, phase, ev = best
    share = excess / ev["median_step_s"] if ev["median_step_s"] else 0.0
    where = {"data": "waiting for data", "forward": "in the forward pass", "step": "per step"}[phase]
    return [CATALOGUE["DST008"].finding(
        severity="medium" if share > 0.2 else "low", confidence=min(0.95, ev["steps_slower"] / ev["steps_compared"]),
        title=f"Rank {rank} is a straggler: {excess * 1e3:.1f} ms slower {where} than the other ranks "
              f"({ev['steps_slower']} of {ev['steps_compared']} steps)",
        description=f"Rank {rank} spent a median {excess * 1e3:.1f} ms more {where} than the median of the other "
                    f"ranks ({share:.0%} of a step): in synchronous data parallelism every rank waits for the "
                    "slowest at each gradient all-reduce, so the whole job runs at its pace.",
        location=None, step=None, evidence=ev,
        recommendations=[Recommendation(
            "fix", "Find what only this rank does: more DataLoader work (num_workers, a slower disk or a bigger "
            "shard), logging or checkpointing on this rank inside the loop, or a slower or shared device.",
            "loader = DataLoader(ds, sampler=sampler, num_workers=4, pin_memory=True, persistent_workers=True)")])]


def hangs(runs: list[RankRun]) -> list[Finding]:
    counts = {r.rank: (r.record.events("dist_collectives") or [None])[-1] for r in runs}
    counts_d = {str(k): (v.data if v is not None else {}) for k, v in counts.items()}
    status = {r.rank: r.record.meta.get("status") for r in runs}

    def fewer(rank: int, op: str | None) -> list[str]:
        if not op:
            return []
        mine = counts_d[str(rank)].get(op, 0)
        return [k for k, v in counts_d.items() if k != str(rank) and v.get(op, 0) < mine]

    # A stall the job recovered from (a slow evaluation, a checkpoint, the last barrier) is only printed:
    # it matters when the rank did not end normally or another rank entered that collective fewer times.
    stalls = [(r.rank, e.data) for r in runs for e in r.record.events("dist_hang")
              if status[r.rank] != "finished" or fewer(r.rank, (e.data.get("in_collective") or {}).get("op"))]
    if not stalls:
        return []
    rank, s = stalls[0]
    inside = s.get("in_collective") or {}
    op = inside.get("op")
    skipped = fewer(rank, op)
    phase = s.get("phase")
    where = (f"in {op} (call {inside.get('call')} on this rank, from {inside.get('where')})" if op
             else "in backward(), in DistributedDataParallel's gradient all-reduce" if phase == "backward"
             else "in DistributedDataParallel's forward()" if phase == "ddp_forward"
             else "outside any collective")
    title = f"Rank {rank} stopped making steps for {s.get('waited_s')} s after step {s.get('step')}, waiting {where}"
    if skipped:
        title += f"; rank(s) {', '.join(skipped)} entered {op} fewer times"
    return [CATALOGUE["DST009"].finding(
        severity="high", confidence=0.9 if op else 0.6, title=title,
        description="The hang watchdog saw no optimizer step finish for much longer than the median step. "
                    "A rank waiting in a collective that another rank never enters waits forever (or until "
                    "the process group's timeout): the stacks show where each rank was.",
        location=inside.get("where"), step=s.get("step"),
        evidence={"stalls": [{"rank": k, **{a: b for a, b in v.items() if a != "stack"},
                              "stack": v.get("stack", [])[-6:]} for k, v in stalls],
                  "collective_counts_by_rank": counts_d, "ranks_with_fewer_calls": skipped},
        recommendations=[*_ddp_fix(phase), Recommendation(
            "fix", "Make every rank enter the same collectives in the same order: no collective under a "
            "rank-dependent condition, the same number of batches on every rank (drop_last=True, or "
            "DDP's join context for uneven inputs).",
            "if rank == 0:\n    log(...)          # no collective inside\n"
            "dist.all_reduce(t)   # outside any `if rank ...`")])]


def uneven_steps(runs: list[RankRun]) -> list[Finding]:
    counts = {r.rank: (max(r.times["step"]) if r.times["step"] else 0) for r in runs}
    if len(set(counts.values())) <= 1 or not any(counts.values()):
        return []
    lo, hi = min(counts.values()), max(counts.values())
    return [CATALOGUE["DST010"].finding(
        severity="medium", confidence=0.9,
        title=f"The ranks ran different numbers of optimizer steps ({lo} to {hi})",
        description="Steps by rank: " + ", ".join(f"rank {k}: {v}" for k, v in counts.items())
                    + ". With DDP each step all-reduces gradients: a rank with more batches waits for partners "
                      "that have finished, and hangs or times out.",
        step=lo + 1, evidence={"steps_by_rank": {str(k): v for k, v in counts.items()}},
        recommendations=[Recommendation(
            "fix", "Give every rank the same number of batches (DistributedSampler pads by default; use "
            "drop_last=True on the loader), or wrap the loop in DDP's join context.",
            "with model.join():\n    for x, y in loader:\n        ...")])]


def _ddp_fix(phase: str | None) -> list[Recommendation]:
    """A rank waiting in DDP's own communication: the other ranks ran out of batches or skipped a step."""
    if phase not in ("backward", "ddp_forward"):
        return []
    return [Recommendation(
        "fix", "Give every rank the same number of batches (a DistributedSampler, drop_last=True), or let DDP "
        "handle the uneven end with its join context; a rank that skips a backward pass (a batch it filters out) "
        "leaves the others waiting in the gradient all-reduce.",
        "sampler = DistributedSampler(ds, drop_last=True)\n"
        "with ddp_model.join():        # ranks that run out of batches shadow the others' collectives\n"
        "    for x, y in loader:\n"
        "        ...")]
