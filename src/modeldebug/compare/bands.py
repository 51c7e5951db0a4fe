"""Robust bands: the statistics behind every learned envelope and every "beyond noise" in a diff.

A statistic is compared on one of two scales:
- `log` (standard deviations, norms, update ratios, learning rates): in log10 space, where seeds
  and batches move values by factors, not by amounts;
- `fraction` (dead, saturated, zero fractions): in plain units, within [0, 1].

A band is the range the healthy values covered, widened on each side by a margin:
``margin = max(floor, 0.5 * observed range)``. The floor is what an unseen seed may add (see
`FLOORS`); half the observed range says that a new run may stray as far again as the healthy runs
strayed from each other. The floors were set with benchmarks/learn_false_alarms.py (docs/compare.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FLOORS", "NOISE_FACTOR", "PHASES", "Band", "band", "jitter", "phase_bounds", "phase_of", "spread"]

#: Margin floors by scale: (learned from one run, learned from two or more). log: in log10 units
#: (0.48 = a factor of 3, 0.7 = a factor of 5); fraction: in plain units.
FLOORS: dict[str, tuple[float, float]] = {"log": (math.log10(5.0), math.log10(3.0)), "fraction": (0.3, 0.25)}
_TINY = 1e-12
NOISE_FACTOR = 4.0
PHASES = ("early", "middle", "late")


def to_scale(value: float, scale: str) -> float:
    return math.log10(max(value, _TINY)) if scale == "log" else value


def from_scale(value: float, scale: str) -> float:
    return 10.0 ** value if scale == "log" else value


@dataclass(frozen=True)
class Band:
    """[lo, hi] in natural units, with the margin (in scale units) it was widened by."""

    lo: float
    hi: float
    margin: float
    scale: str

    def excess(self, value: float) -> float:
        """How far `value` lies outside, in margins (0 inside; inf for NaN/Inf)."""
        if not math.isfinite(value):
            return math.inf
        v = to_scale(value, self.scale)
        lo, hi = to_scale(self.lo, self.scale), to_scale(self.hi, self.scale)
        out = max(lo - v, v - hi, 0.0)
        return out / self.margin if self.margin > 0 else (math.inf if out > 0 else 0.0)

    def to_list(self) -> list[float]:
        return [_round(self.lo), _round(self.hi), _round(self.margin)]

    @classmethod
    def from_list(cls, values: list[float], scale: str) -> Band:
        lo, hi, margin = (float(v) for v in values)
        return cls(lo, hi, margin, scale)

    def text(self) -> str:
        return f"{_fmt(self.lo)}-{_fmt(self.hi)}"


def band(values: Iterable[float], scale: str, *, runs: int, noise: float = 0.0) -> Band | None:
    """The band of healthy `values` seen in `runs` runs (None when none is finite); `noise` is the
    statistic's step-to-step jitter (see `jitter`), in scale units."""
    xs = [to_scale(v, scale) for v in values if math.isfinite(v)]
    if not xs:
        return None
    lo, hi = min(xs), max(xs)
    margin = max(FLOORS[scale][0 if runs < 2 else 1], 0.5 * (hi - lo), NOISE_FACTOR * noise)
    lo, hi = lo - margin, hi + margin
    if scale == "fraction":
        return Band(max(0.0, lo), min(1.0, hi), margin, scale)
    return Band(from_scale(lo, scale), from_scale(hi, scale), margin, scale)


def jitter(series: Iterable[dict[int, float]], scale: str) -> float:
    """Robust standard deviation of the changes between consecutive samples of each series, over
    sqrt(2): how much the statistic moves by itself from one sampled step to the next (0 when unknown)."""
    diffs = []
    for s in series:
        xs = [to_scale(s[k], scale) for k in sorted(s) if math.isfinite(s[k])]
        diffs += [abs(b - a) for a, b in itertools.pairwise(xs)]
    if len(diffs) < 3:
        return 0.0
    diffs.sort()
    mid = len(diffs) // 2
    med = diffs[mid] if len(diffs) % 2 else 0.5 * (diffs[mid - 1] + diffs[mid])
    return 1.4826 * med / math.sqrt(2.0)


def spread(series: list[dict[int, float]], scale: str) -> float:
    """Robust standard deviation between runs at the same step, pooled over the steps two or more of
    `series` (one per run) share: how far another seed moves the statistic (0 when unknown)."""
    devs = []
    for step in set.intersection(*(set(s) for s in series)) if len(series) >= 2 else ():
        xs = [to_scale(s[step], scale) for s in series if math.isfinite(s[step])]
        if len(xs) >= 2:
            mean = sum(xs) / len(xs)
            devs += [abs(x - mean) * math.sqrt(len(xs) / (len(xs) - 1)) for x in xs]
    if len(devs) < 4:
        return 0.0
    devs.sort()
    mid = len(devs) // 2
    return 1.4826 * (devs[mid] if len(devs) % 2 else 0.5 * (devs[mid - 1] + devs[mid]))


def phase_bounds(steps: int) -> tuple[int, int]:
    """Where the middle and late phases start, for healthy runs of at least `steps` steps: thirds."""
    return max(1, steps // 3), max(2, (2 * steps) // 3)


def phase_of(step: int, bounds: tuple[int, int]) -> str:
    return "early" if step < bounds[0] else "middle" if step < bounds[1] else "late"


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2g}" if abs(v) < 0.01 or abs(v) >= 1000 else f"{v:.3g}"
