"""Where the time between steps goes: the stack sampler that names the line (capture/gaps.py).

It starts only when the gaps between steps hold a large share of the run, names the user's line
that held them (with the library function it called), and is gone when the session ends.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

import modeldebug as md


def _plot(loss: float) -> None:
    time.sleep(0.004)  # drawing a curve: the gap's line


def _checkpoint(model: nn.Module) -> None:
    time.sleep(0.06)  # writing a checkpoint: the stall's line


def _train(between, steps: int = 240, width: int = 10):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05 / width)
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(steps):
            x = torch.randn(32 if width == 10 else 512, width)
            loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
            between(step, model, loss)
    assert not any(t.name == "modeldebug-gaps" for t in threading.enumerate())
    return s


def _line_of(fn, text: str) -> int:  # type: ignore[no-untyped-def]
    import inspect

    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, ln in enumerate(lines) if text in ln)


@pytest.mark.parametrize("busy", [True, False], ids=["a-plot-every-step", "nothing-between-steps"])
def test_the_line_that_holds_the_gaps_is_named(busy: bool) -> None:
    s = _train(lambda step, model, loss: _plot(loss.item()) if busy else None)
    events = s.record.events("gap_profile")
    f = next((f for f in s.report().findings if f.code == "PRF001"), None)
    if not busy:
        assert not events and f is None  # never started: the gaps held little of the run
        return
    (ev,) = events
    top = ev.data["lines"][0]
    assert top["file"] == __file__ and top["line"] == _line_of(_plot, "time.sleep") and top["share"] >= 0.6
    assert top["code"] == "time.sleep(0.004)"  # the comment left out
    assert f is not None and "test_gap_profile.py:" in f.title and "time.sleep(0.004)" in f.title
    assert "time.sleep(0.004)" in f.recommendations[0].implementation


def test_a_periodic_stall_names_its_line_in_the_fix() -> None:
    # (steps of ~1-2 ms: a busy machine's hiccups are then no 5x stalls that break the period)
    s = _train(lambda step, model, loss: _checkpoint(model) if step % 10 == 9 else None, steps=200, width=1024)
    f = next(f for f in s.report().findings if f.code == "PRF002")
    profile = f.evidence["gap_profile"]
    assert profile["lines"][0]["line"] == _line_of(_checkpoint, "time.sleep")
    assert "if step % 100 == 0:" in f.recommendations[0].implementation
    assert "time.sleep(0.06)" in f.recommendations[0].implementation
