"""ReduceLROnPlateau watching its metric the wrong way round (LRN002's scheduler path).

An accuracy stepped into a scheduler left at its default mode='min' makes every better epoch "no
improvement": the learning rate is cut while training goes well. The same scheduler with the
mode that fits its metric (mode='max' for the accuracy, or the validation loss with mode='min')
is the healthy twin.
"""

from __future__ import annotations

import pytest
import torch
from helpers import found
from torch import nn

import modeldebug as md


def _fit(metric: str, mode: str, epochs: int = 10, stepped: list[float] | None = None):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = (x[:, :3].sum(1) > 0).long()
    xv = torch.randn(256, 10)
    yv = (xv[:, :3].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=1)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for epoch in range(epochs):
            model.train()
            for i in range(0, 512, 64):
                loss = nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                out = model(xv)
                value = (out.argmax(1) == yv).float().mean().item() if metric == "accuracy" else \
                    nn.functional.cross_entropy(out, yv).item()
            sched.step(value if stepped is None else stepped[epoch])
    return s


def test_an_accuracy_stepped_into_mode_min_is_found() -> None:
    s = _fit("accuracy", "min")
    f = found(s.report(), "lr_too_low")
    assert f is not None and f.code == "LRN002" and "mode='min'" in f.title
    assert f.severity == "high" and len(f.evidence["cuts_at_a_new_best"]) >= 2
    assert "mode='max'" in f.recommendations[0].implementation
    (call, *_) = s.record.events("plateau_step")
    assert call.data["mode"] == "min" and 0.0 <= call.data["metric"] <= 1.0


@pytest.mark.parametrize(("metric", "mode"), [("accuracy", "max"), ("loss", "min")])
def test_a_scheduler_whose_mode_fits_its_metric_is_left_alone(metric: str, mode: str) -> None:
    s = _fit(metric, mode)
    assert found(s.report(), "lr_too_low") is None
    assert len(s.record.events("plateau_step")) == 10


def test_a_validation_loss_that_turns_up_under_mode_min_is_overfitting_not_a_backwards_mode() -> None:
    """(review) A validation loss that improves at first, then rises for the rest of the run, while
    the training loss falls: mode='min' is right, and its cuts are what it is for."""
    rising = [0.70, 0.66, 0.67, 0.70, 0.74, 0.78, 0.83, 0.88, 0.93, 0.97]
    s = _fit("loss", "min", stepped=rising)
    assert found(s.report(), "lr_too_low") is None
