"""A warmup that never finishes: a schedule sized in optimizer steps, stepped once an epoch (blind4's GRU
classifier: the rate never rose above 20% of its base, val accuracy 0.955 against 0.992)."""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious
from torch import nn

import modeldebug as md


def _fit(per: str, epochs: int = 8, batches: int = 25):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.randn(batches * 32, 10)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    total = epochs * batches
    warmup = total // 10  # sized in optimizer steps
    if per == "epoch_sized":  # sized in epochs and stepped per epoch: finishes after 2 epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / 2))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(epochs):
            for b in range(batches):
                i = slice(32 * b, 32 * b + 32)
                loss = nn.functional.cross_entropy(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if per == "step":
                    sched.step()
            if per != "step":
                sched.step()
    return session.report()


@pytest.mark.parametrize("per", ["epoch", "step", "epoch_sized"])
def test_a_warmup_in_steps_stepped_per_epoch_never_finishes(per: str) -> None:
    report = _fit(per)
    (event,) = report.record.events("lr_scheduler")
    assert event.data["type"] == "LambdaLR" and event.data["base_lrs"] == [3e-3] and event.data["optimizer_steps"] == 200
    f = found(report, "lr_too_low")
    if per != "epoch":
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert event.data["scheduler_steps"] == 8
    assert f is not None and f.severity == "medium" and "still warming up" in f.title
    assert f.evidence["share_of_base"] == pytest.approx(8 / 20, rel=0.01)  # 8 of its 20 warmup steps
    assert "scheduler.step()" in f.recommendations[0].implementation


def test_a_finished_warmup_with_a_slower_backbone_group_is_not_unfinished() -> None:
    """Review: a backbone group at 1e-3 and a head at 1e-1, a 3-epoch warmup stepped per epoch as meant.
    The rate recorded is the first group's; comparing it with the largest base rate read it as 1%."""
    torch.manual_seed(0)
    backbone, head = nn.Linear(10, 32), nn.Linear(32, 3)
    model = nn.Sequential(backbone, nn.ReLU(), head)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).long()
    opt = torch.optim.SGD([{"params": backbone.parameters(), "lr": 1e-3}, {"params": head.parameters(), "lr": 1e-1}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / 3))
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(10):
            for b in range(8):
                loss = nn.functional.cross_entropy(model(x[32 * b:32 * b + 32]), y[32 * b:32 * b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
    report = session.report()
    assert report.record.events("lr_scheduler")[0].data["base_lrs"] == [1e-3, 1e-1]
    assert found(report, "lr_too_low") is None


def test_a_scheduler_local_to_main_is_described_after_it_is_gone() -> None:
    """pytorch/examples' mnist builds its StepLR inside `main()`: by the end of the run (when
    `modeldebug run` detaches) it has been collected. Its finalizer keeps what it was."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))

    def main() -> None:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))  # in steps
        for _ in range(8):
            for b in range(8):
                loss = nn.functional.cross_entropy(model(x[32 * b:32 * b + 32]), y[32 * b:32 * b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()  # once an epoch

    with md.watch(model, db=":memory:") as session:
        main()
    report = session.report()
    (event,) = report.record.events("lr_scheduler")
    assert event.data["type"] == "LambdaLR" and event.data["scheduler_steps"] == 8 and event.data["optimizer_steps"] == 64
    f = found(report, "lr_too_low")
    assert f is not None and "still warming up" in f.title


def _one_cycle(per: str, max_lr: float):  # type: ignore[no-untyped-def]
    """OneCycleLR(max_lr, 8 epochs of 25 batches) with SGD and momentum, stepped per batch or per epoch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.randn(800, 10)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=8, steps_per_epoch=25)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(8):
            for b in range(25):
                loss = nn.functional.cross_entropy(model(x[32 * b:32 * b + 32]), y[32 * b:32 * b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if per == "step":
                    sched.step()
            if per == "epoch":
                sched.step()
    return session.report()


@pytest.mark.parametrize("per", ["epoch", "step"])
def test_a_one_cycle_schedule_stepped_per_epoch_never_leaves_its_start(per: str) -> None:
    """blind7: OneCycleLR(max_lr=2.0, epochs, steps_per_epoch) stepped once an epoch. Its base rate is max_lr / 25,
    so the rate "peaked at its base": judged against the max_lr it is built to climb to, it reached 4% of it."""
    report = _one_cycle(per, max_lr=0.2)
    (event,) = report.record.events("lr_scheduler")
    assert event.data["peak_lrs"] == [0.2] and event.data["total_steps"] == 200
    f = found(report, "lr_too_low")
    if per == "step":
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and "still warming up" in f.title and "max_lr" in f.title
    assert f.evidence["share_of_base"] < 0.1


def test_a_rate_too_high_under_a_schedule_is_the_rate_when_the_trouble_began() -> None:
    """A one-cycle schedule to max_lr=0.5 (SGD, momentum 0.9) spikes the loss near its peak. LRN001 quoted the
    run's last rate: "Learning rate 2.00e-06 is too high"."""
    report = _one_cycle("step", max_lr=0.5)
    f = found(report, "lr_too_high")
    assert f is not None
    lrs = report.record.column("lr")
    assert f.evidence["lr"] in lrs.values[lrs.steps <= 80].tolist()  # a rate of the trouble's time ...
    assert f.evidence["lr"] > 0.2 and float(lrs.values[-1]) < 1e-3  # ... near the peak, not the run's last
