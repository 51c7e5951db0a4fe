"""Small statistics for rates measured on few prompts: Wilson intervals, their difference, edit distance.

With tens of prompts a rate of 2/3 says little; every rate we report carries a 95% interval so a
reader (and the regression gate) can tell a real change from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Rate", "edit_distance", "newcombe_diff", "normalized_edit_distance", "percentile", "wilson"]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k={k} is not between 0 and n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The exact end points are 0 and 1 at k=0 and k=n; rounding must not move them off.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def newcombe_diff(k0: int, n0: int, k1: int, n1: int, z: float = 1.96) -> tuple[float, float, float]:
    """Difference p1 - p0 of two proportions and its 95% interval (Newcombe's hybrid score method 10).

    Treats the two samples as independent; on the same prompts (paired) that is conservative, the
    interval is wider than a paired one would be.
    """
    if n0 <= 0 or n1 <= 0:
        return 0.0, -1.0, 1.0
    p0, p1 = k0 / n0, k1 / n1
    l0, u0 = wilson(k0, n0, z)
    l1, u1 = wilson(k1, n1, z)
    d = p1 - p0
    lo = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return d, max(-1.0, lo), min(1.0, hi)


class Rate:
    """k of n, with its rate and Wilson interval; `to_dict()` for evidence."""

    __slots__ = ("k", "n")

    def __init__(self, k: int, n: int) -> None:
        self.k, self.n = int(k), int(n)

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def to_dict(self) -> dict[str, float | int]:
        lo, hi = self.interval
        return {"k": self.k, "n": self.n, "rate": round(self.rate, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4)}

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.k}/{self.n} = {self.rate:.0%} (95% CI {lo:.0%}-{hi:.0%})"

    def __repr__(self) -> str:
        return f"Rate({self.k}, {self.n})"


def edit_distance(a: str, b: str, *, limit: int = 500) -> int:
    """Levenshtein distance between the first `limit` characters of `a` and `b`."""
    a, b = a[:limit], b[:limit]
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalized_edit_distance(a: str, b: str, *, limit: int = 500) -> float:
    """Edit distance divided by the longer length (0 identical, 1 nothing in common)."""
    longest = max(len(a[:limit]), len(b[:limit]))
    return edit_distance(a, b, limit=limit) / longest if longest else 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
