"""Every captured statistic against a direct computation."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldebug.capture.stats import ACTIVATION_STATS, activation_stats, first_tensor, histogram, norms, stacked_norms


def _stats(x: torch.Tensor) -> dict[str, float]:
    return dict(zip(ACTIVATION_STATS, activation_stats(x).tolist()))


def test_activation_stats_match_direct_computation() -> None:
    torch.manual_seed(0)
    x = torch.relu(torch.randn(32, 16))
    s = _stats(x)
    assert math.isclose(s["mean"], x.mean().item(), rel_tol=1e-6)
    assert math.isclose(s["std"], x.std().item(), rel_tol=1e-6)
    assert s["min"] == x.min().item() and s["max"] == x.max().item()
    assert math.isclose(s["zero_frac"], (x == 0).float().mean().item(), rel_tol=1e-6)
    assert s["nonfinite"] == 0.0
    dead = ((x != 0).sum(0) == 0).float().mean().item()
    assert math.isclose(s["dead_frac"], dead, abs_tol=1e-9)


def test_dead_fraction_counts_units_zero_for_every_sample() -> None:
    x = torch.randn(8, 10)
    x[:, :4] = 0.0  # 4 of 10 units never fire
    x[0, 5] = 0.0  # zero on one sample only: alive
    assert math.isclose(_stats(x)["dead_frac"], 0.4, abs_tol=1e-6)


def test_dead_fraction_of_conv_channels() -> None:
    x = torch.rand(4, 6, 5, 5) + 0.1
    x[:, 1] = 0.0
    x[:, 3] = 0.0
    assert math.isclose(_stats(x)["dead_frac"], 2 / 6, abs_tol=1e-6)


def test_nan_is_flagged_not_propagated_into_fractions() -> None:
    x = torch.ones(10, 10)
    x[0, 0] = float("nan")
    x[1, 1] = float("inf")
    s = _stats(x)
    assert s["nonfinite"] == 1.0
    assert 0.0 <= s["zero_frac"] <= 1.0 and 0.0 <= s["dead_frac"] <= 1.0
    assert _stats(torch.ones(4, 4))["nonfinite"] == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=4, max_size=64))
def test_stats_equal_numpy_and_fractions_stay_in_unit_interval(values: list[float]) -> None:
    arr = np.array(values, dtype=np.float32)
    n = len(arr) // 2 * 2
    x = torch.from_numpy(arr[:n].reshape(2, -1))
    s = _stats(x)
    assert math.isclose(s["mean"], float(np.mean(arr[:n], dtype=np.float64)), rel_tol=1e-4, abs_tol=1e-1)
    assert s["min"] == float(arr[:n].min()) and s["max"] == float(arr[:n].max())
    for k in ("zero_frac", "nonfinite", "dead_frac"):
        assert 0.0 <= s[k] <= 1.0


def test_histogram_counts_every_value_in_its_range() -> None:
    x = torch.linspace(-1, 1, 101)
    h = histogram(x, 10).tolist()
    assert h[0] == -1.0 and h[1] == 1.0
    assert sum(h[2:]) == 101


def test_histogram_of_a_large_tensor_uses_a_bounded_sample() -> None:
    h = histogram(torch.randn(1 << 20), 16).tolist()
    assert (1 << 16) <= sum(h[2:]) <= (1 << 16) + 16


def test_norms_match_per_tensor_norms_across_dtypes() -> None:
    ts = [torch.randn(3, 4), torch.randn(5, dtype=torch.float64), torch.randn(2, 2)]
    got = [v.item() for v in norms(ts)]
    want = [t.norm().item() for t in ts]
    assert np.allclose(got, want)


def test_first_tensor_finds_floating_outputs_in_containers() -> None:
    t = torch.ones(2)
    assert first_tensor((torch.ones(2, dtype=torch.long), {"a": t})) is t
    assert first_tensor([1, "x"]) is None


def test_stacked_norms_mixed_and_uniform() -> None:
    a, b = torch.randn(3, 3), torch.randn(4)
    assert torch.allclose(stacked_norms([a, b]), torch.stack([a.norm(), b.norm()]))
    got = stacked_norms([a, b.double()])
    assert got.dtype == torch.float64 and np.allclose(got.tolist(), [a.norm().item(), b.norm().item()])
