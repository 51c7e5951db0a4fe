"""Where the time between steps goes: the stack sampler that names the line (capture/gaps.py).

It starts only when the gaps between steps hold a large share of the run, names the user's line
that held them (with the library function it called), and is gone when the session ends.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from torch import nn

import modeldebug as md


def _busy(seconds: float) -> float:
    """Work in Python for `seconds` (what a plot, a log line or a checkpoint costs the loop)."""
    end, acc = time.perf_counter() + seconds, 0.0
    while time.perf_counter() < end:
        acc += math.sin(acc)
    return acc


def _plot(loss: float) -> None:
    _busy(0.004)  # drawing a curve: the gap's line


def _checkpoint(model: nn.Module) -> None:
    _busy(0.06)  # writing a checkpoint: the stall's line


def _pause(loss: float) -> None:
    time.sleep(0.004)  # showing the curve for a moment, on purpose


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
    top = ev.data["lines"][0]  # inside _busy: the innermost line of the user's code
    assert top["file"] == __file__ and top["function"] == "_busy"
    assert sum(ln["share"] for ln in ev.data["lines"] if ln["function"] == "_busy") >= 0.6
    busy = set(range(_line_of(_busy, "end, acc"), _line_of(_busy, "return acc") + 1))
    assert {ln["line"] for ln in ev.data["lines"] if ln["function"] == "_busy"} <= busy
    assert f is not None and f.severity == "medium" and "test_gap_profile.py:" in f.title
    assert "waits for data" not in f.title  # no DataLoader, and the line is known
    assert top["code"] in f.recommendations[0].implementation


def test_a_deliberate_pause_between_steps_is_named_and_low() -> None:
    """`time.sleep` (or `plt.pause`) between steps: slow by design, said as such."""
    s = _train(lambda step, model, loss: _pause(loss.item()))
    (ev,) = s.record.events("gap_profile")
    top = ev.data["lines"][0]
    assert top["line"] == _line_of(_pause, "time.sleep") and top["code"] == "time.sleep(0.004)"  # comment left out
    f = next(f for f in s.report().findings if f.code == "PRF001")
    assert f.severity == "low" and "on purpose" in f.description


def test_a_periodic_stall_names_its_line_in_the_fix() -> None:
    # (steps of ~1-2 ms: a busy machine's hiccups are then no 5x stalls that break the period)
    s = _train(lambda step, model, loss: _checkpoint(model) if step % 10 == 9 else None, steps=200, width=1024)
    f = next(f for f in s.report().findings if f.code == "PRF002")
    profile = f.evidence["gap_profile"]
    assert profile["lines"][0]["function"] == "_busy" and f.severity == "medium"
    assert "if step % 100 == 0:" in f.recommendations[0].implementation
    assert profile["lines"][0]["code"] in f.recommendations[0].implementation


def test_training_in_a_worker_thread_is_the_thread_sampled() -> None:
    """A loop run in a thread of its own (the main thread only waits on it): its stack is sampled."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("s", _train(lambda step, model, loss: _plot(loss.item()))))
    thread.start()
    thread.join()
    (ev,) = out["s"].record.events("gap_profile")
    assert ev.data["lines"][0]["function"] == "_busy"


@pytest.mark.parametrize("refill", [True, False], ids=["a-static-buffer-refilled", "one-batch-built-once"])
def test_an_input_buffer_refilled_in_place_is_a_new_batch(refill: bool) -> None:
    """The very tensor every step, refilled with `copy_` (a static input buffer, as CUDA graphs want):
    written since the last sampled step, so not the same batch (`input.reused` 0); untouched, it is."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    buf = torch.randn(32, 10)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(60):
            if refill:
                buf.copy_(torch.randn(32, 10))
            loss = nn.functional.mse_loss(model(buf), buf.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
    (e,) = s.record.entities("input")
    reused = s.record.series(e.name, "reused", kind="input").values
    assert len(reused) >= 3 and (reused == (0.0 if refill else 1.0)).all()
