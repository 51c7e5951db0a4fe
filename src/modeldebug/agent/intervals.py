"""Interval: a probe's number over a few seeded repeats, with the margin its noise allows.

A probe that compares two noisy numbers (a loss with and without the inputs, a first and a last
loss) must not call a difference that the noise could make. Each such probe is repeated with a
few seeds (`AnalysisOptions.probe_seeds`, 3 by default; seeds `seed`, `seed + 1`, ...), and its
verdict reads the interval, not one value:

- the interval is the mean of the repeats +- Student's t (95%, n - 1 degrees of freedom) times
  the standard error, and never narrower than `floor`: the noise one run shows by itself (how
  much its loss moves from step to step at the end), so a deterministic model whose repeats agree
  exactly still gets a margin;
- a verdict is "fail" only when the whole interval is on the failing side of the threshold,
  "pass" when it is wholly on the other side, and "inconclusive" (no finding) when it straddles.

```python
iv = interval([0.12, 0.15, 0.11], floor=0.01)
iv.low > 0.1      # the share is above 0.1 whatever the noise
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Interval", "interval", "tail_noise"]

#: two-sided 95% Student t quantiles by degrees of freedom (beyond the table: 1.96)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class Interval:
    """The mean of `values` with a ~95% interval [`low`, `high`]."""

    values: tuple[float, ...]
    mean: float
    low: float
    high: float

    @property
    def n(self) -> int:
        return len(self.values)

    def above(self, threshold: float) -> bool:
        """The whole interval lies above `threshold`."""
        return self.low > threshold

    def below(self, threshold: float) -> bool:
        """The whole interval lies below `threshold`."""
        return self.high < threshold

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "values": list(self.values)}

    def text(self, fmt: str = ".3g") -> str:
        """`mean [low, high]`."""
        return f"{self.mean:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"

    def spread(self, fmt: str = ".0%", what: str = "seed") -> str:
        """How the repeats came out, in words that read right for their number.

        Three or more: "95% interval 88% to 92%, 3 seeds"; one or two are listed ("2 seeds: 92% and 92%"),
        since an interval over two values says little (and over one, only the run's own noise).
        """
        if self.n >= 3:
            return f"95% interval {self.low:{fmt}} to {self.high:{fmt}}, {self.n} {what}s"
        if not self.values:
            return f"no finite value over the {what}s"
        return f"{self.n} {what}{'s' if self.n > 1 else ''}: " + " and ".join(f"{v:{fmt}}" for v in self.values)


def interval(values: Sequence[float], *, floor: float = 0.0) -> Interval:
    """Mean +- t * standard error over `values` (non-finite ones dropped), at least +- `floor`.

    No finite value: an interval of NaN, which is neither above nor below anything.
    """
    vals = tuple(float(v) for v in values if math.isfinite(v))
    if not vals:
        nan = float("nan")
        return Interval((), nan, nan, nan)
    mean = sum(vals) / len(vals)
    half = 0.0
    if len(vals) > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        half = _T95.get(len(vals) - 1, 1.96) * sd / math.sqrt(len(vals))
    half = max(half, abs(floor) if math.isfinite(floor) else 0.0)
    return Interval(vals, mean, mean - half, mean + half)


def tail_noise(losses: Sequence[float], window: int = 10) -> float:
    """How much a run's loss moves by itself at its end: the spread of its last step-to-step changes.

    The standard deviation of the last `window` differences over sqrt(2) (a steady trend has constant
    differences and adds nothing), as the noise of one loss value; 0 for fewer than three values.
    """
    tail = [v for v in losses[-(window + 1):] if math.isfinite(v)]
    diffs = [b - a for a, b in zip(tail, tail[1:])]
    if len(diffs) < 2:
        return 0.0
    m = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - m) ** 2 for d in diffs) / (len(diffs) - 1)) / math.sqrt(2)
