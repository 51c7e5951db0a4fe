"""The trailing running median the loss-curve rules smooth with: exact on ordinary runs, and on long runs
(a quarter-run window over 40,000+ steps) the exact median of a trailing window a few steps old, never a
look ahead, so a long run's report does not take minutes."""

from __future__ import annotations

import numpy as np

from modeldebug.rules.context import running_median


def _exact(v: np.ndarray, w: int, i: int) -> float:
    return float(np.median(v[max(0, i - w + 1): i + 1]))


def test_exact_on_an_ordinary_run() -> None:
    v = np.random.default_rng(0).normal(size=2000).cumsum()
    out = running_median(v, 300)
    assert np.array_equal(out, [_exact(v, 300, i) for i in range(2000)])


def test_a_long_run_gets_medians_of_trailing_windows_at_most_w_over_64_steps_old() -> None:
    rng = np.random.default_rng(1)
    n, w = 48_000, 12_000
    v = rng.normal(size=n).cumsum() * 0.01 + np.exp(-np.arange(n) / 4000)
    out = running_median(v, w)
    assert out[-1] == _exact(v, w, n - 1)
    for i in rng.integers(0, n, size=60):
        lag_ok = [j for j in range(max(0, int(i) - w // 64), int(i) + 1) if out[i] == _exact(v, w, j)]
        growing = [j for j in range(max(0, int(i) - int(i) // 64), int(i) + 1) if out[i] == float(np.median(v[: j + 1]))]
        assert lag_ok or growing, i  # some window that ended at most w/64 (or i/64 at the start) steps before
