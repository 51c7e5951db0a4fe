"""Sampler: which steps get the per-layer detail.

Every step records the step row (loss, total and per-group gradient norms, timings, ...); the
per-layer detail (activation statistics, per-parameter gradient and weight norms, update ratios,
input and loss-input statistics) is taken on sampled steps only: the first three, 5, 10 and 20,
then every ``sample_every`` steps (50 / 5 / 1 by level).

At ``basic``, when the user has not set ``sample_every``, the detail of a deep model is also kept
within a budget of statistic rows per step on average (`ROWS_PER_STEP`, about 2.3 KB of record
per step): a model whose sample holds more than ``50 * ROWS_PER_STEP`` rows is sampled every 100, 150, ...
steps,
so that the record grows with the run's length, not with depth times length. The schedule is fixed
as soon as the models and optimizers are known (the first step) and changes only when a model or
an optimizer is added.
"""

from __future__ import annotations

import math

from ..config import DebuggingConfig

__all__ = ["EARLY_STEPS", "ROWS_PER_STEP", "Sampler"]

EARLY_STEPS = frozenset({0, 1, 2, 5, 10, 20})
#: Average statistic rows per step the detail may add at `basic` (each row ~50 bytes of SQLite).
ROWS_PER_STEP = 45


class Sampler:
    """Decides once per step whether it is sampled (hooks ask on every module call)."""

    def __init__(self, config: DebuggingConfig) -> None:
        self.base_every = config.effective_sample_every()
        self.budgeted = config.analysis_level == "basic" and config.sample_every is None
        self.every = self.base_every
        self.rows_per_sample = 0
        self._step = -1
        self._now = False

    def sized(self, rows_per_sample: int) -> None:
        """Tell the sampler how many statistic rows one sample of the watched models writes."""
        self.rows_per_sample = rows_per_sample
        if self.budgeted:
            # a multiple of the level's interval: the sampled steps stay round numbers
            self.every = self.base_every * max(1, math.ceil(rows_per_sample / (ROWS_PER_STEP * self.base_every)))

    def sampled(self, step: int) -> bool:
        """Is `step` a sampled step?"""
        if step != self._step:
            self._step = step
            self._now = step in EARLY_STEPS or step % self.every == 0
        return self._now
