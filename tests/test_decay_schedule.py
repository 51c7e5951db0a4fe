"""A decay that runs out in the first batches: a schedule sized in epochs, stepped after every batch (blind1's
`StepLR(step_size=epochs // 2, gamma=0.1)` in the batch loop: the rate 1000x down by step 15, the loss stuck at
the class prior). Its healthy twins: the same schedule stepped per epoch, a cosine schedule that reaches zero at
the run's end, a ReduceLROnPlateau, a warmup from zero, and a run that learned before an early decay."""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious
from torch import nn

import modeldebug as md


def _fit(schedule: str, epochs: int = 10, batches: int = 25, lr: float = 0.05):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.randn(batches * 32, 10)
    y = (torch.sin(1.5 * x[:, 0]) + x[:, 1] * x[:, 2] > 0).long() + (x[:, 3] > 0.5).long()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    total = epochs * batches
    per_batch = schedule in ("step_per_batch", "cosine", "warmup", "early_exponential")
    sched = {
        "step_per_batch": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=epochs // 2, gamma=0.1),
        "step_per_epoch": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=epochs // 2, gamma=0.1),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0),
        "warmup": lambda: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / 50)),
        "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.01, patience=0),
        "early_exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),
    }[schedule]()
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(epochs):
            total_loss = 0.0
            for b in range(batches):
                i = slice(32 * b, 32 * b + 32)
                loss = nn.functional.cross_entropy(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total_loss += loss.item()
                if per_batch:
                    sched.step()
            if schedule == "plateau":
                sched.step(total_loss)
            elif not per_batch:
                sched.step()
    return session.report()


def test_an_epoch_sized_decay_stepped_every_batch_is_named_as_the_cause() -> None:
    report = _fit("step_per_batch")
    f = found(report, "lr_too_low")
    assert f is not None and f.code == "LRN002" and f.severity == "high" and report.findings[0] is f
    assert "decayed to nothing" in f.title and f.evidence["decayed_at_step"] == 20  # 0.05 -> 5e-6 at step 20
    assert f.step == f.evidence["decay_began_at_step"] == 5  # the first cut, 5 batches in
    assert any("imbalanced" in s["title"] for s in f.evidence.get("symptoms", []))  # the prior it left, folded
    assert f.evidence["scheduler"]["type"] == "StepLR" and "after every batch" in f.description
    assert "once an epoch" in f.recommendations[0].implementation


@pytest.mark.parametrize("schedule", ["step_per_epoch", "cosine", "warmup", "plateau"])
def test_schedules_that_do_not_run_out_early_are_not_flagged(schedule: str) -> None:
    report = _fit(schedule)
    f = found(report, "lr_too_low")
    assert f is None or "decayed to nothing" not in f.title, f.title
    assert not serious(report), [x.title for x in report.findings]


def test_an_early_decay_after_the_model_has_learned_is_not_flagged() -> None:
    """ExponentialLR(0.9) per batch: 1000x down by step 66, but an easy task fitted well before that."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    x = torch.randn(800, 10)
    y = (x[:, 0] > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(8):
            for b in range(25):
                loss = nn.functional.cross_entropy(model(x[32 * b:32 * b + 32]), y[32 * b:32 * b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    f = found(session.report(), "lr_too_low")
    assert f is None or "decayed to nothing" not in f.title



def test_a_run_stuck_at_its_full_rate_is_not_blamed_on_the_schedule_that_decays_later() -> None:
    """Review: random labels, SGD at 0.1, StepLR(10, 0.1) per epoch. The loss sat at chance from the start at the full
    rate; the decay came later and read as "stopped learning when its rate ran out"."""
    torch.manual_seed(0)
    model = nn.Linear(8, 4)
    x, y = torch.randn(128, 8), torch.randint(0, 4, (128,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(100):  # the rate under 1/1000 of its start from epoch 40 (step 160 of 400)
            for b in range(4):
                loss = nn.functional.cross_entropy(model(x[32 * b:32 * b + 32]), y[32 * b:32 * b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
    f = found(session.report(), "lr_too_low")
    assert f is None or "decayed to nothing" not in f.title
