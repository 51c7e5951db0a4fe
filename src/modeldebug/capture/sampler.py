"""Sampler: which steps get the per-layer detail.

Every step records the step row (loss, total and per-group gradient norms, timings, ...); the
per-layer detail (activation statistics, per-parameter gradient and weight norms, update ratios,
input and loss-input statistics) is taken on sampled steps only: the first three, 5, 10 and 20,
then every ``sample_every`` steps (50 / 5 / 1 by level).

Two budgets can widen that interval when the user has not set ``sample_every``; both keep the
sampled steps multiples of the level's interval:

- **Rows** (`basic`): the detail of a deep model is kept within `ROWS_PER_STEP` statistic rows per
  step on average (about 2.3 KB of record per step): a model whose sample holds more than
  ``50 * ROWS_PER_STEP`` rows is sampled every 100, 150, ... steps, so that the record grows with
  the run's length, not with depth times length. Fixed when the models and optimizers are known
  (the first step); changes only when a model or an optimizer is added.
- **Time** (`detailed`): the sampled steps may add at most `TIME_BUDGET` of the average step.
  Each sample after the warm-up is judged over the steps since the sample before it: their total
  against as many usual (median) steps, each step timed from its first forward pass to its end
  (the user's own work between steps, such as an evaluation every 100 steps, is not taken for
  ours); from the median
  of the last three such costs the interval becomes the smallest of 5, 10, 20, 40, ... steps that
  keeps the average within budget (a sample as dear as one step: every 20 steps; a cheap one:
  every 5, the level's own). Each rung's sampled steps hold the next rung's, so two runs of one
  script on machines of different speeds still share their sparser run's sampled steps (what
  `learn` and `--against` compare). While a CUDA device's steps are read late (deferred copies,
  capture/deferred.py) the host runs ahead of the device and no step's time is its own: the
  interval is not judged then (verified on the CPU with a copier that defers every step; not yet
  on a GPU). It is re-judged at every sample, so it follows the run (a model that
  grows, a machine that gets busy); it never grows more than fourfold at once, and narrows only
  to an interval that uses at most 80% of the budget (no flip-flop at a boundary). `basic` keeps its
  fixed schedule (two runs of one script are sampled at the same steps, for `compare`), and
  `comprehensive` samples every step because that is what it is for.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median

from ..config import DebuggingConfig

__all__ = ["EARLY_STEPS", "ROWS_PER_STEP", "TIME_BUDGET", "Sampler"]

EARLY_STEPS = frozenset({0, 1, 2, 5, 10, 20})
#: Average statistic rows per step the detail may add at `basic` (each row ~50 bytes of SQLite).
ROWS_PER_STEP = 45
#: The share of the average step the sampled steps may add, by level. `detailed`'s goal is a mean of
#: at most 1.15x the plain step (issue 17); the unsampled steps cost up to ~1.10x on small CPU models,
#: so the samples get the other 5%.
TIME_BUDGET = {"detailed": 0.05}
#: Sampled steps before this one are not timed: the first calls build caches, plans and buffers.
_WARM_STEP = 3
#: Sample costs kept (their median judges).
_COSTS_KEPT = 3
#: The interval narrows only when the narrower one would use at most this share of the budget.
_NARROW_AT = 0.8


def _rung(base: int, steps: float) -> int:
    """The smallest interval ``base * 2**k`` of at least `steps` steps."""
    return base * 2 ** max(0, math.ceil(math.log2(steps / base) - 1e-9)) if steps > base else base


class Sampler:
    """Decides once per step whether it is sampled (hooks ask on every module call)."""

    def __init__(self, config: DebuggingConfig) -> None:
        self.base_every = config.effective_sample_every()
        self.budgeted = config.analysis_level == "basic" and config.sample_every is None
        budget = TIME_BUDGET.get(config.analysis_level) if config.sample_every is None else None
        self.time_budget: float | None = budget
        self.every = self.base_every
        self.rows_every = self.time_every = self.base_every
        self.rows_per_sample = 0
        self.sample_cost: float | None = None  # a sample's extra time, in unsampled steps (median)
        self._plain: list[float] = []
        self._costs: deque[float] = deque(maxlen=_COSTS_KEPT)
        self._step = -1
        self._now = False

    def sized(self, rows_per_sample: int) -> None:
        """Tell the sampler how many statistic rows one sample of the watched models writes."""
        self.rows_per_sample = rows_per_sample
        if self.budgeted:
            # a multiple of the level's interval: the sampled steps stay round numbers
            self.rows_every = self.base_every * max(1, math.ceil(rows_per_sample / (ROWS_PER_STEP * self.base_every)))
            self.every = max(self.rows_every, self.time_every)

    def timed(self, step: int, busy: float | None, sampled: bool) -> bool:
        """One finished step's busy time: from its first forward pass to its end, without the time
        between steps, where the user's own periodic work (evaluation, checkpoints, logging) runs
        (with `time_budget` set; the tracer calls it at each step's end). True when the interval changed.

        A sample is judged over its window, the steps since the one before it: the window's total
        minus as many usual (median) steps, so what a sample leaves to the step after it (putting
        its hooks away) is counted. An unsampled step above twice the usual (a garbage collection,
        the machine) counts as twice the usual. `busy` is None while a device's steps are read late
        (the tracer's choice): the host runs ahead of the device, a sampled step read at once first
        waits for the steps still queued, and the steps after it only launch, so no step's time is
        the usual one; the interval stays as it is then."""
        if busy is None:
            return False
        window = self._plain
        if not sampled:
            window.append(busy)
            return False
        if step < _WARM_STEP or len(window) < 2:  # warm-up, or back-to-back samples: nothing to compare with
            window.clear()
            return False
        usual = median(window)
        cap = 2 * usual
        total = busy + window[0] + sum(min(t, cap) for t in window[1:])  # [0]: the last sample's tail
        n = len(window) + 1
        window.clear()
        if not usual > 0:
            return False
        self._costs.append(max(total - n * usual, 0.0) / usual)
        self.sample_cost = cost = median(self._costs)
        base, budget, now = self.base_every, self.time_budget, self.time_every
        want = _rung(base, cost / budget)  # type: ignore[operator]
        if want > now:
            want = min(want, 4 * now)  # one slow sample (a busy machine) cannot stop sampling
        else:  # narrowed only to an interval with room to spare: a cost near a boundary does not flip it
            want = min(now, _rung(base, cost / (_NARROW_AT * budget)))  # type: ignore[operator]
        if want == now:
            return False
        self.time_every = want
        self.every = max(self.rows_every, want)
        return True

    def sampled(self, step: int) -> bool:
        """Is `step` a sampled step?"""
        if step != self._step:
            self._step = step
            self._now = step in EARLY_STEPS or step % self.every == 0
        return self._now
