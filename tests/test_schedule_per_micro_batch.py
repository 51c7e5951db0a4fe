"""LRN002: a schedule sized in optimizer steps, stepped after every backward pass under gradient
accumulation (blind10: a linear warmup-and-decay stepped per micro-batch reaches 0 at a quarter of the
run). Twins: the schedule stepped with the optimizer; one sized in micro-batches on purpose and stepped
per micro-batch (its course spans the run); accumulation without a schedule."""

from __future__ import annotations

import pytest
import torch
from helpers import found
from torch import nn

import modeldebug as md

ACCUM, STEPS = 4, 120
# PyTorch warns when the schedule steps before the optimizer's first step: part of the bug reproduced
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")


def _fit(how: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(STEPS * ACCUM * 16, 10)
    y = x[:, :3].sum(1, keepdim=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    total = STEPS * ACCUM if how == "sized_in_micro_batches" else STEPS
    warm = total // 10
    start = 1e-3 if how == "from_near_zero" else 1 / warm  # (LinearLR(start_factor=1e-3) starts at 0.1% of the rate)
    sched = None if how == "no_schedule" else torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(start + s / warm, max(0.0, (total - s) / (total - warm))))
    per_micro = how in ("per_micro_batch", "sized_in_micro_batches", "from_near_zero")
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(STEPS * ACCUM):
            xb, yb = x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
            (nn.functional.mse_loss(model(xb), yb) / ACCUM).backward()
            if sched is not None and per_micro:
                sched.step()  # next to backward(): every micro-batch
            if (i + 1) % ACCUM == 0:
                opt.step()
                opt.zero_grad()
                if sched is not None and not per_micro:
                    sched.step()
    return session.report()


@pytest.mark.parametrize("how", ["per_micro_batch", "from_near_zero"])
def test_a_schedule_stepped_per_micro_batch_runs_out_and_is_found(how: str) -> None:
    report = _fit(how)
    f = found(report, "lr_too_low")
    assert f is not None and f.code == "LRN002" and f.severity == "high" and report.findings[0] is f
    assert f.evidence["backward_per_step"] == ACCUM and 3.5 <= f.evidence["steps_per_optimizer_step"] <= 4.5
    assert 0.6 <= f.evidence["share_of_run_at_zero"] <= 0.8
    assert "scheduler.step()      # here" in f.recommendations[0].implementation


@pytest.mark.parametrize("how", ["per_optimizer_step", "sized_in_micro_batches", "no_schedule"])
def test_a_schedule_that_spans_the_run_is_left_alone(how: str) -> None:
    assert found(_fit(how), "lr_too_low") is None
