"""A sampled step's small outputs, copied into buffer rows and reduced a shape at a time, give the
statistics each output gives by itself; the batched kernels give what their definitions say.

Reference values here are computed from the definitions (a max and a min over the batch for the
dead units, the mean of `x != 0` for the inactive ones, `aminmax` for the range) on the same
tensors, so a restructured kernel that changed a value fails.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture.stats import (
    ACTIVATION_STATS,
    activation_stats,
    activation_stats_batched,
)


def _reference_batched(x: torch.Tensor) -> torch.Tensor:
    """Every activation statistic of each ``x[i]``, straight from the definitions (float32/64 `x`)."""
    m = x.shape[0]
    flat = x.reshape(m, -1)
    n = flat.shape[1]
    total = flat.sum(1)
    mean = total / n
    std = torch.linalg.vector_norm(flat - mean[:, None], dim=1) / math.sqrt(n - 1)
    lo, hi = torch.aminmax(flat, dim=1)
    nonzero = x.ne(0).to(x.dtype)
    zero = 1.0 - nonzero.reshape(m, -1).sum(1) / n
    nonfinite = (~torch.isfinite(total)).to(x.dtype)

    def units(test) -> torch.Tensor:  # type: ignore[no-untyped-def]
        if x.dim() < 3 or x.shape[1] < 2:
            return torch.zeros(m, dtype=x.dtype)
        axes = [2] if x.dim() != 4 else [2, 3]
        fracs = [test([d for d in range(1, x.dim()) if d != a]).to(x.dtype).mean(dim=1) for a in axes]
        return torch.stack(fracs, dim=1).amax(dim=1)

    dead = units(lambda dims: (x.amax(dim=dims) == 0) & (x.amin(dim=dims) == 0))
    inactive = units(lambda dims: nonzero.mean(dim=dims) <= 0.01)
    by_name = {"mean": mean, "std": std, "min": lo, "max": hi, "zero_frac": zero, "nonfinite": nonfinite,
               "dead_frac": dead, "inactive_frac": inactive}
    return torch.stack([by_name[k] for k in ACTIVATION_STATS], dim=1)


def _odd_outputs(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(sum(shape))
    xs = [torch.randn(*shape, generator=g, dtype=dtype) for _ in range(7)]
    xs[0] = xs[0].relu()
    if len(shape) >= 2:
        xs[1][:, :1] = 0.0  # a dead unit
        xs[1][:, 1:2] = -0.0  # a dead unit of negative zeros
    xs[2].view(-1)[3] = float("nan")  # NaN counts as non-zero
    xs[3].view(-1)[0] = float("inf")
    xs[4].zero_()  # everything dead
    xs[5][1:] = 0.0  # units alive on one sample only: inactive
    xs[6] = xs[6] + 50.0  # a large mean
    return torch.stack(xs)


@pytest.mark.parametrize("shape", [(32, 16), (200, 12), (8, 12, 20), (4, 3, 5, 6), (3, 2, 2, 3, 4), (1, 5), (6,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_statistics_equal_their_definitions(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = _odd_outputs(shape, dtype)
    got = activation_stats_batched(x)
    want = _reference_batched(x)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True), (got - want).abs().max()
    # exact where the value is a count or an extreme
    for k in ("min", "max", "zero_frac", "nonfinite", "dead_frac", "inactive_frac"):
        i = ACTIVATION_STATS.index(k)
        assert torch.equal(got[:, i].nan_to_num(-7.0), want[:, i].nan_to_num(-7.0)), k
    assert got[2, ACTIVATION_STATS.index("nonfinite")] == 1.0 and got[0, ACTIVATION_STATS.index("nonfinite")] == 0.0
    if len(shape) >= 2 and shape[0] >= 2:  # units exist: the all-zero output is dead, its healthy twin not
        assert got[4, ACTIVATION_STATS.index("dead_frac")] == 1.0 and got[0, ACTIVATION_STATS.index("dead_frac")] < 1.0


def test_batched_half_precision_and_a_subset_of_statistics() -> None:
    x = _odd_outputs((16, 8), torch.float32)
    names = ("std", "dead_frac")
    sub = activation_stats_batched(x, names)
    full = _reference_batched(x)
    idx = [ACTIVATION_STATS.index(k) for k in ACTIVATION_STATS if k in names]
    assert torch.allclose(sub, full[:, idx], rtol=1e-6, atol=1e-6, equal_nan=True)
    half = activation_stats_batched(x.half())
    assert torch.allclose(half, _reference_batched(x.half().float()), rtol=1e-6, atol=1e-6, equal_nan=True)


class _Net(nn.Module):
    """Many small outputs of one shape, with the cases the buffer rows must get right: an in-place
    ReLU after a Linear (the Linear's row must keep its own values), an Identity and a Dropout(0.0)
    returning the very tensor before them, and a Tanh (saturation: measured one at a time)."""

    def __init__(self, depth: int = 12) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(10, 10), nn.ReLU(inplace=True), nn.Identity(), nn.Dropout(0.0), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_rows_of_a_deep_model_equal_each_output_measured_by_itself() -> None:
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    names = {m: n for n, m in model.named_modules()}
    seen: dict[tuple[int, str], torch.Tensor] = {}  # (step, module) -> its output, copied at once
    step = [0]

    def keep(module: nn.Module, args: object, out: torch.Tensor) -> None:
        seen.setdefault((step[0], names[module]), out.detach().clone())

    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(keep)
    g = torch.Generator().manual_seed(3)
    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        s.tracer.sampler.sampled = lambda step: True  # every step sampled: the buffers are reused
        for i in range(4):
            step[0] = i
            x, y = torch.randn(24, 10, generator=g), torch.randint(0, 3, (24,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    rec = s.record
    compared = 0
    for (i, name), out in seen.items():
        want = dict(zip(ACTIVATION_STATS, activation_stats(out).tolist()))
        for stat in ("mean", "std", "min", "max", "zero_frac", "dead_frac", "inactive_frac"):
            series = rec.series(name, stat)
            got = dict(zip(series.steps.tolist(), series.values.tolist()))
            if i not in got:
                continue
            assert got[i] == pytest.approx(want[stat], rel=1e-5, abs=1e-6), (i, name, stat)
            compared += 1
    assert compared >= 3 * 61 * 7  # every module of at least three sampled steps
    # the in-place ReLU changed the Linear's tensor after it was copied: the Linear keeps negatives
    assert all(v < 0 for v in rec.series("body.0", "min").values.tolist())
    assert all(v == 0 for v in rec.series("body.2", "min").values.tolist())  # the Identity sees the ReLU
    assert rec.series("body.1", "training").values.tolist() == [1.0] * len(rec.series("body.1", "training"))
