"""Vectorised helpers of the analysis, each equal to the per-point (or per-tensor) loop it replaced, on random
input with NaN, ties and uneven groups: a deep model's or a long run's report must not change a finding."""

from __future__ import annotations

import numpy as np
import pytest

from modeldebug.record import Frame, Record, RunWriter, Series
from modeldebug.rules.context import Context, running_median, trailing_medians
from modeldebug.rules.measures import collapse_onset


@pytest.mark.parametrize("n, w", [(0, 5), (5, 5), (6, 5), (257, 4), (3000, 50), (2400, 7)])
def test_trailing_medians_are_the_medians_of_the_w_points_before(n: int, w: int) -> None:
    rng = np.random.default_rng(n + w)
    v = np.round(rng.normal(size=n), 1)  # rounded: ties, where an even window's median averages two equal values
    out = trailing_medians(v, w)
    assert np.array_equal(out, [float(np.median(v[t - w:t])) for t in range(w, n)])


def test_trailing_medians_in_blocks_equal_one_block() -> None:
    v = np.random.default_rng(3).normal(size=50_000).cumsum()
    w = 50
    assert len(trailing_medians(v, w)) == len(v) - w  # more cells than one block holds
    sample = np.random.default_rng(4).integers(w, len(v), size=200)
    out = trailing_medians(v, w)
    assert all(out[t - w] == float(np.median(v[t - w:t])) for t in sample)


def test_all_rows_per_entity_equals_the_loop() -> None:
    rng = np.random.default_rng(5)
    entity = np.sort(rng.integers(0, 40, size=600))
    steps = np.concatenate([np.arange(c) for c in np.bincount(entity) if c])
    values = rng.choice([0.0, 0.0, 1e-9, 0.5, np.nan], size=len(entity))
    values[entity % 7 == 0] = 0.0  # some entities are zero on every row
    frame = Frame("grad_norm", entity, steps, values)
    got = frame.all_rows(frame.values == 0)
    want = {int(e): bool(np.all(frame.series(int(e)).values == 0)) for e in np.unique(entity)}
    assert got == want
    assert any(got.values()) and not all(got.values())
    assert Frame("x", *(np.array([], dtype=t) for t in (np.int64, np.int64, float))).all_rows(np.array([], dtype=bool)) == {}


def _collapse_onset_loop(g: np.ndarray, tiny: np.ndarray, base: float, first: float) -> int | None:
    """The loop `collapse_onset` replaced (quadratic: the maximum of every prefix)."""
    for t in range(1, len(g) - 4):
        before = g[:t][np.isfinite(g[:t])]
        if len(before) and first > 0 and before.max() > 10 * first:
            return None
        if tiny[t] and np.isfinite(g[t - 1]) and g[t - 1] >= 0.1 * base:
            return t
    return None


def test_collapse_onset_equals_the_loop() -> None:
    rng = np.random.default_rng(6)
    found = exploded = 0
    for trial in range(400):
        n = int(rng.integers(0, 60))
        g = rng.lognormal(0, 1, size=n)
        if n > 8 and trial % 3 == 0:
            g[int(rng.integers(1, n)):] *= 1e-6  # a collapse
        if n > 8 and trial % 5 == 0:
            g[int(rng.integers(1, n))] *= 50  # an explosion
        g[rng.random(n) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
        first = float(g[0]) if n and np.isfinite(g[0]) else 0.0
        base = float(np.nanmedian(g[:5])) if n and np.isfinite(g[:5]).any() else 1.0
        tiny = np.isfinite(g) & (g <= 1e-4 * base)
        want = _collapse_onset_loop(g, tiny, base, first)
        assert collapse_onset(g, tiny, base, first) == want, trial
        found += want is not None
        exploded += want is None and n > 8 and trial % 5 == 0
    assert found > 20 and exploded > 5  # both ways out of the loop were taken


def test_the_context_smooths_each_curve_once_and_tells_equal_lengths_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = RunWriter(tmp_path / "run.db")
    w.set_meta(script="train.py", mode="run", level="basic", status="finished", exit_code=0)
    w.close()
    ctx = Context(Record.open(tmp_path / "run.db"))
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=500), rng.normal(size=500)  # same length and window, other values
    first = ctx.running_median(a, 25)
    assert np.array_equal(first, running_median(a, 25))
    assert ctx.running_median(a.copy(), 25) is first  # the same values: computed once
    assert np.array_equal(ctx.running_median(b, 25), running_median(b, 25))
    assert np.array_equal(ctx.running_median(a, 24), running_median(a, 24))
    with pytest.raises(ValueError):
        first[0] = 0.0  # shared between rules: read-only


def test_the_loss_aligned_to_other_steps_equals_the_lookup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modeldebug.rules.gradients import _aligned_loss

    w = RunWriter(tmp_path / "run.db")
    w.set_meta(script="train.py", mode="run", level="basic", status="finished", exit_code=0)
    rng = np.random.default_rng(8)
    for step in range(0, 300, 3):  # steps with gaps, some losses NaN
        w.add_step(step, loss=float("nan") if step % 33 == 0 else float(rng.random()), sampled=step % 2 == 0)
    w.close()
    ctx = Context(Record.open(tmp_path / "run.db"))
    other = Series(np.array([-5, 0, 1, 3, 4, 6, 33, 297, 298, 400], dtype=np.int64), np.zeros(10))
    by_step = dict(zip(ctx.loss.steps.tolist(), ctx.loss.values.tolist()))
    want = np.array([by_step.get(int(t), np.nan) for t in other.steps], dtype=float)
    assert np.array_equal(_aligned_loss(ctx, other), want, equal_nan=True)
    assert np.isnan(want).sum() == 8 and np.isfinite(want).sum() == 2  # steps it lacks, and NaN losses
