"""What the cross-rank rules share: one rank's record read for them, fingerprint comparison."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ...catalogue import CATALOGUE, Finding, Recommendation
from ...record import Record

__all__ = ["REL", "RankRun", "common_steps", "differs", "diverged", "fp_compare", "module_of"]

REL = 1e-6  # fingerprints of replicated tensors agree to this relative difference


@dataclass
class RankRun:
    """One rank's record, read for the cross-rank rules."""

    rank: int
    record: Record

    def fps(self, kind: str) -> dict[int, dict[str, list[float | None]]]:
        """step -> name -> [sum, sum of squares], from events of `kind`."""
        out: dict[int, dict[str, list[float | None]]] = {}
        for e in self.record.events(kind):
            if e.step is not None:
                out.setdefault(e.step, {}).update(zip(e.data.get("names", []), e.data.get("fp", [])))
        return out

    @cached_property
    def times(self) -> dict[str, dict[int, float | None]]:
        """phase -> step -> seconds (also "lr" -> step -> learning rate)."""
        out: dict[str, dict[int, float | None]] = {"data": {}, "forward": {}, "step": {}, "lr": {}}
        for e in self.record.events("dist_times"):
            steps = e.data.get("steps", [])
            for key, by_step in out.items():
                by_step.update(zip(steps, e.data.get(key, [])))
        return out

    @cached_property
    def batches(self) -> dict[int, tuple[Any, ...]]:
        out: dict[int, tuple[Any, ...]] = {}
        for e in self.record.events("dist_batches"):
            for s, shape, fp in zip(e.data.get("steps", []), e.data.get("shapes", []), e.data.get("fp", [])):
                out[s] = (tuple(shape), *(fp or ()))
        return out

    @cached_property
    def model(self) -> dict[str, Any]:
        ev = self.record.events("dist_model")
        return ev[0].data if ev else {}


def differs(a: list[float | None] | None, b: list[float | None] | None) -> float:
    """The largest relative difference of two fingerprints (0 when equal; inf when one is missing or NaN)."""
    if a is None or b is None or len(a) != len(b):
        return 0.0
    worst = 0.0
    for x, y in zip(a, b):
        if x is None or y is None:
            if (x is None) != (y is None):
                return math.inf
            continue
        scale = max(abs(x), abs(y), 1e-12)
        worst = max(worst, abs(x - y) / scale)
    return worst


def module_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def fp_compare(runs: list[RankRun], kind: str) -> list[dict[str, Any]]:
    """Per common step: which tensors differ between rank 0 (the lowest) and each other rank."""
    base, others = runs[0], runs[1:]
    fps = {r.rank: r.fps(kind) for r in runs}
    out = []
    for step in sorted(fps[base.rank]):
        if not all(step in fps[o.rank] for o in others):
            continue
        ref = fps[base.rank][step]
        differing: dict[str, float] = {}
        ranks: set[int] = set()
        for o in others:
            for name, fp in fps[o.rank][step].items():
                d = differs(ref.get(name), fp)
                if d > REL:
                    differing[name] = max(differing.get(name, 0.0), d)
                    ranks.add(o.rank)
        out.append({"step": step, "n": len(ref), "differing": differing, "ranks": sorted(ranks),
                    "values": {name: {r.rank: fps[r.rank][step].get(name) for r in runs}
                               for name in list(differing)[:1]}})
    return out


def diverged(runs: list[RankRun], kind: str, code: str, what: str, recs: list[Recommendation],
              extra: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> list[Finding]:
    if any(r.model.get("sharded") for r in runs):
        return []  # FSDP and DTensor shard parameters on purpose
    checks = fp_compare(runs, kind)
    bad = [c for c in checks if c["differing"]]
    if not bad:
        return []
    first = bad[0]
    name = max(first["differing"], key=first["differing"].get)
    ev = {"first_step": first["step"], "steps_checked": [c["step"] for c in checks],
          "steps_differing": [c["step"] for c in bad], "ranks_differing_from_rank0": first["ranks"],
          "tensors_differing": len(first["differing"]), "tensors": first["n"],
          "largest_relative_difference": round(max(first["differing"].values()), 6),
          "example": {"tensor": name, "fingerprint_by_rank": {str(k): v for k, v in first["values"].get(
              name, {}).items()}},
          "first_differing": sorted(first["differing"])[:10]}
    if extra:
        ev.update(extra(checks))
    spec = CATALOGUE[code]
    return [spec.finding(
        severity="high", confidence=0.9 if len(bad) > 1 else 0.75,
        title=f"{what} of {len(first['differing'])} of {first['n']} tensors differ across ranks from step "
              f"{first['step']} (rank(s) {', '.join(map(str, first['ranks']))} vs rank 0)",
        description=f"{what} should be identical on every rank of a data-parallel job; at step {first['step']} "
                    f"{len(first['differing'])} tensors differ (largest relative difference "
                    f"{ev['largest_relative_difference']:.3g}, e.g. {name}), and they still differed at "
                    f"{len(bad)} of {len(checks)} compared steps.",
        location=module_of(name), step=first["step"], evidence=ev, recommendations=recs)]


def common_steps(runs: list[RankRun], series: Callable[[RankRun], dict[int, Any]]) -> tuple[list[int], dict[int, dict[int, Any]]]:
    data = {r.rank: series(r) for r in runs}
    steps = sorted(set.intersection(*(set(d) for d in data.values()))) if data else []
    return steps, data
