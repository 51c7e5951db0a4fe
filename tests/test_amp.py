"""Mixed precision: a run under ``torch.amp.GradScaler`` is recorded as the user's unscaled training.

The scaler multiplies the loss by its scale (65536 at first) before ``backward``; the tracer sees
that tensor. The recorded loss and gradient norms must be the unscaled ones, and the steps the
scaler skips (an overflow it answers by lowering its scale) are not faults. The real GradScaler runs
here, enabled, on the CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.testing import healthy_regression

from helpers import found, serious


def _train_amp(lr: float, *, steps: int = 60, init_scale: float = 2.0**16, optimizer_known: bool = True,
               unscale_first: bool = False, through_scaler: bool = True) -> tuple[list[float], list[float], md.Report, list[bool]]:
    """A regression trained with autocast (float16) and a real, enabled GradScaler; returns the
    losses and gradient norms the loop itself saw (unscaled), the report, and which steps the
    scaler skipped (its scale went down)."""
    model, data = healthy_regression(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    assert scaler.is_enabled()
    losses: list[float] = []
    norms: list[float] = []
    skipped: list[bool] = []
    with md.watch(model, optimizer=opt if optimizer_known else None, db=":memory:") as s:
        for step in range(steps):
            x, y = data.batch(step, 64)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                out = model(x)
            loss = data.loss_fn(out.float(), y)
            scaler.scale(loss).backward()
            if unscale_first:
                scaler.unscale_(opt)
            scale = scaler.get_scale()
            norms.append(math.sqrt(sum(float(p.grad.double().norm() ** 2) for p in model.parameters()))
                         / (1.0 if unscale_first else scale))
            if through_scaler:
                scaler.step(opt)
                scaler.update()
            else:  # the bug: the scaled gradients go straight to the optimizer
                opt.step()
            losses.append(loss.item())
            skipped.append(scaler.get_scale() < scale)
    return losses, norms, s.report(), skipped


@pytest.mark.parametrize("optimizer_known", [True, False])
def test_a_healthy_amp_run_is_recorded_unscaled_and_comes_out_clean(optimizer_known: bool) -> None:
    losses, norms, report, skipped = _train_amp(0.05, optimizer_known=optimizer_known)
    assert not any(skipped)
    recorded = report.record.column("loss").values.tolist()
    assert len(recorded) == len(losses)
    assert recorded == pytest.approx(losses, rel=1e-6)  # the user's loss, not 65536 times it
    assert report.record.column("grad_norm").values.tolist() == pytest.approx(norms, rel=1e-4)
    assert found(report, "lr_too_high") is None and found(report, "nonfinite") is None
    # (the wall-clock rules judge this loop's own Python between steps: on a loaded 2-core machine the
    # gap read 54% of the step once; they are tested where timing is the point)
    assert [f for f in serious(report) if not f.startswith(("slow_step", "dataloader_bottleneck"))] == []


def test_gradients_unscaled_by_hand_before_clipping_are_recorded_once_unscaled() -> None:
    losses, norms, report, _ = _train_amp(0.05, unscale_first=True)
    assert report.record.column("loss").values.tolist() == pytest.approx(losses, rel=1e-6)
    assert report.record.column("grad_norm").values.tolist() == pytest.approx(norms, rel=1e-4)
    assert serious(report) == []


@pytest.mark.parametrize("optimizer_known", [True, False])
def test_steps_the_scaler_skips_are_not_faults(optimizer_known: bool) -> None:
    # A large first scale overflows the float16 gradients: the scaler skips those steps and halves
    # its scale until it fits; that is how it works, not a non-finite training.
    losses, norms, report, skipped = _train_amp(0.05, init_scale=2.0**24, optimizer_known=optimizer_known)
    assert 3 <= sum(skipped) < 20 and not any(math.isfinite(n) for n, s in zip(norms, skipped) if s)
    assert found(report, "nonfinite") is None
    assert serious(report) == []
    events = report.record.events("amp_step_skipped")
    assert len(events) == sum(skipped), "each skipped step is said"
    kept = [v for v, s in zip(losses, skipped) if not s]
    assert report.record.column("loss").values.tolist() == pytest.approx(kept, rel=1e-6)


def test_a_too_high_learning_rate_under_amp_is_still_found() -> None:
    _, _, report, _ = _train_amp(5.0)  # x100 the healthy rate
    assert report.findings and report.findings[0].kind == "lr_too_high", [f.kind for f in report.findings]


def test_an_optimizer_stepped_on_the_scaled_gradients_is_the_root_cause() -> None:
    """blind4's NeRF-style MLP: `scaler.scale(loss).backward()` then `opt.step()`: every update is the
    scale times too large. It was reported as a non-finite run only."""
    _, _, report, _ = _train_amp(0.05, init_scale=1024.0, through_scaler=False)
    (event,) = report.record.events("amp_scaled_step")
    assert event.step == 0 and event.data["scale"] == 1024.0 and event.data["optimizer"] == "SGD"
    top = report.findings[0]
    assert top.kind == "exploding_gradients" and top.severity == "high" and "still scales" in top.title
    assert "1,024 times" in top.title and "scaler.step(optimizer)" in top.recommendations[0].implementation


def test_a_plain_fp32_optimizer_stepped_between_a_scaled_backward_and_scaler_step_is_not_scaled() -> None:
    """Model A trains through a GradScaler; model B, fp32 with its own optimizer, steps between A's
    scaled backward and `scaler.step(opt_a)`. B's gradients were never scaled (review: it drew GRD001
    high, "65,536 times too large")."""
    torch.manual_seed(0)
    a, b = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1)), nn.Linear(8, 1)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), 1e-2), torch.optim.SGD(b.parameters(), 1e-2)
    scaler = torch.amp.GradScaler("cpu")
    with md.watch(nn.ModuleDict({"a": a, "b": b}), optimizer=[opt_a, opt_b], db=":memory:") as s:
        for _ in range(40):
            x = torch.randn(64, 8)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss_a = nn.functional.mse_loss(a(x).float(), x[:, :1])
            opt_a.zero_grad()
            scaler.scale(loss_a).backward()
            loss_b = nn.functional.mse_loss(b(x), x[:, :1])
            opt_b.zero_grad()
            loss_b.backward()
            opt_b.step()
            scaler.step(opt_a)
            scaler.update()
    report = s.report()
    assert not report.record.events("amp_scaled_step")
    assert found(report, "exploding_gradients") is None
