"""Schedules that should match on every rank: the learning rate (DST005), the loss (DST006)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from ...catalogue import CATALOGUE, Finding, Recommendation
from .base import RankRun, common_steps

__all__ = ["loss_mismatch", "lr_mismatch"]


def _schedule(runs: list[RankRun], code: str, what: str, series: Callable[[RankRun], dict[int, Any]],
              judge: Callable[[dict[int, float]], float | None], recs: list[Recommendation],
              words: Callable[[float], str]) -> list[Finding]:
    steps, data = common_steps(runs, series)
    rows = []
    for s in steps:
        vals = {r.rank: data[r.rank][s] for r in runs}
        if any(v is None or not math.isfinite(v) for v in vals.values()):
            continue
        rows.append((s, vals))
    if len(rows) < 3:
        return []
    scores = [(s, vals, judge(vals)) for s, vals in rows]
    bad = [(s, vals, sc) for s, vals, sc in scores if sc is not None]
    if len(bad) < max(2, 0.5 * len(rows)):
        return []
    s0, vals0, score = bad[0]
    return [CATALOGUE[code].finding(
        severity="high" if code == "DST005" else "medium", confidence=min(0.95, 0.5 + 0.5 * len(bad) / len(rows)),
        title=f"{what} differs across ranks at {len(bad)} of {len(rows)} steps ({words(score)})",
        description=f"At step {s0} {what.lower()} was " + ", ".join(f"{v:.4g} on rank {k}" for k, v in vals0.items())
                    + ": every rank of a data-parallel job should follow the same schedule.",
        step=s0, evidence={"steps_compared": len(rows), "steps_differing": len(bad),
                           "first": {"step": s0, **{f"rank{k}": v for k, v in vals0.items()}},
                           "median_by_rank": {str(r.rank): statistics.median(v[r.rank] for _, v in rows) for r in runs}},
        recommendations=recs)]


def _lr_judge(vals: dict[int, float]) -> float | None:
    lo, hi = min(vals.values()), max(vals.values())
    return hi / lo if hi > 0 and lo >= 0 and (hi - lo) > 1e-9 * max(abs(hi), 1e-12) else None


def lr_mismatch(runs: list[RankRun]) -> list[Finding]:
    def lr(r: RankRun) -> dict[int, Any]:
        return r.times["lr"]

    return _schedule(runs, "DST005", "The learning rate", lr, _lr_judge, [
        Recommendation("fix", "Compute the learning rate and the scheduler from values that are the same on every "
                       "rank (not from the rank, the local batch count or a per-rank config).",
                       "lr = base_lr * world_size  # the same on every rank\n"
                       "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)  # stepped once per step, everywhere")],
        lambda x: f"up to {x:.3g}x between ranks" if math.isfinite(x) else "zero on some ranks")


def loss_mismatch(runs: list[RankRun]) -> list[Finding]:
    def loss(r: RankRun) -> dict[int, Any]:
        s = r.record.column("loss")
        return {int(k): float(v) for k, v in zip(s.steps, s.values)}

    def judge(vals: dict[int, float]) -> float | None:
        pos = [abs(v) for v in vals.values()]
        lo, hi = min(pos), max(pos)
        return hi / lo if lo > 0 and hi / lo > 3 else (math.inf if lo == 0 < hi else None)

    found = _schedule(runs, "DST006", "The loss", loss, judge, [
        Recommendation("fix", "Use the same loss function, reduction and scaling on every rank, and give every rank "
                       "data prepared the same way (normalisation, label mapping) from the same distribution.",
                       "loss = loss_fn(model(x), y)  # no rank-dependent weights, scales or divisions")],
        lambda x: f"up to {x:.3g}x between ranks")
    if found:  # a ratio above 3 at one step can be noise; consistent ratios cannot
        ratios = found[0].evidence["median_by_rank"]
        vals = [abs(v) for v in ratios.values()]
        if min(vals) > 0 and max(vals) / min(vals) < 3:
            return []
    return found
