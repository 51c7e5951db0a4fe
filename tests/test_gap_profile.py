"""Where the time between steps goes: the stack sampler that names the line (capture/gaps.py).

It starts only when the gaps between steps hold a large share of the run, names the user's line
that held them (with the library function it called), and is gone when the session ends.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
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
    _busy(0.01)  # drawing a curve: the gap's line


def _checkpoint(model: nn.Module) -> None:
    _busy(0.06)  # writing a checkpoint: the stall's line


def _pause(loss: float) -> None:
    time.sleep(0.004)  # showing the curve for a moment, on purpose


def _train(between, steps: int = 240):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(steps):
            x = torch.randn(32, 10)
            loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
            between(step, model, loss)
    assert not any(t.name == "modeldebug-gaps" for t in threading.enumerate())
    return s


def _top_function(lines: list[dict]) -> str:
    """The function of the user's code that holds the most samples, its lines added up. (A sample
    of busy Python waits for the GIL up to the switch interval, so it can land on the next line.)"""
    shares: dict[str, float] = {}
    for ln in lines:
        shares[ln["function"]] = shares.get(ln["function"], 0.0) + ln["share"]
    return max(shares, key=lambda k: shares[k])


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
    assert top["file"] == __file__ and _top_function(ev.data["lines"]) == "_busy"
    assert sum(ln["share"] for ln in ev.data["lines"] if ln["function"] == "_busy") >= 0.5
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


@pytest.mark.parametrize("what", ["a-checkpoint", "a-pause", "no-profile"])
def test_a_periodic_stall_names_its_line_in_the_fix(what: str) -> None:
    """A recorded run (the periodic stall is timed exactly, not on this busy machine): every 10th
    step stalls between steps, and the gap profile names the line. The fix makes that line rarer; a
    pause on purpose makes the finding low; without a profile the fix is the generic one."""
    from modeldebug.record import Record, RunWriter
    from modeldebug.rules import analyze

    w = RunWriter(":memory:")
    for i in range(200):
        stall = i % 10 == 0 and i > 0
        w.add_step(i, t_step=0.061 if stall else 0.001, t_data=0.0605 if stall else 0.0002, t_forward=0.0003,
                   t_backward=0.0003, t_optimizer=0.0002, lr=0.01, sampled=0)
    code = {"a-checkpoint": "torch.save(model.state_dict(), path)", "a-pause": "plt.pause(0.06)"}.get(what)
    if code:
        inside = "torch.serialization.save" if what == "a-checkpoint" else "matplotlib.pyplot.pause"
        w.add_event(21, "gap_profile", {"samples": 400, "interval_s": 0.005, "first_step": 21, "last_step": 200,
                                        "lines": [{"file": "/runs/x/train.py", "line": 40, "function": "<module>",
                                                   "code": code, "inside": inside, "share": 0.97}]})
    w.set_meta(steps=200, script="train.py", cwd="/runs/x")
    w.flush()
    f = next(f for f in analyze(Record(w.conn)) if f.code == "PRF002")
    fix = f.recommendations[0].implementation
    assert "if step % 100 == 0:" in fix
    if code is None:
        assert "gap_profile" not in f.evidence and f.severity == "medium"
        return
    assert code in fix and "train.py:40" in fix and "train.py:40" in f.description
    assert f.severity == ("low" if what == "a-pause" else "medium")


def test_training_in_a_worker_thread_is_the_thread_sampled() -> None:
    """A loop run in a thread of its own (the main thread only waits on it): its stack is sampled."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("s", _train(lambda step, model, loss: _plot(loss.item()))))
    thread.start()
    thread.join()
    (ev,) = out["s"].record.events("gap_profile")
    assert _top_function(ev.data["lines"]) == "_busy"


@pytest.mark.parametrize("refill", ["copy_", "numpy", None], ids=["refilled-with-copy_", "refilled-through-numpy",
                                                                  "one-batch-built-once"])
def test_an_input_buffer_refilled_in_place_is_a_new_batch(refill: str | None) -> None:
    """The very tensor every step, refilled in place (a static input buffer, as CUDA graphs want):
    written since the last sampled step, so not the same batch (`input.reused` 0), even when written
    through NumPy, which autograd's version counter does not see; untouched, it is."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    buf = torch.randn(32, 10)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(60):
            if refill == "copy_":
                buf.copy_(torch.randn(32, 10))
            elif refill == "numpy":
                buf.numpy()[:] = torch.randn(32, 10).numpy()
            loss = nn.functional.mse_loss(model(buf), buf.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
    (e,) = s.record.entities("input")
    reused = s.record.series(e.name, "reused", kind="input").values
    assert len(reused) >= 3 and (reused == (0.0 if refill else 1.0)).all()


@pytest.mark.parametrize(("code", "inside", "waits"), [
    ("time.sleep(0.1)", "", True),
    ("plt.draw(); plt.pause(0.05)", "matplotlib.pyplot.pause", True),
    ("plt.pause(0.1)", "matplotlib.pyplot.pause", True),
    ('answer = input("next? ")', "", True),
    ("work.wait()", "torch.distributed.Work.wait", False),  # a collective: work
    ("proc.wait()", "subprocess.Popen.wait", False),
    ("ready.wait(0.01)", "threading.Event.wait", False),  # a prefetch thread: a data bottleneck
    ("model.show(x)", "", False),
    ("self.input(batch)", "", False),
    ("print('pause(')", "", False),
    ('logger.info("show(x)")', "logging.Logger.info", False),
    ("input_ids = tokenizer(text)", "transformers.tokenization_utils_base.PreTrainedTokenizerBase.__call__", False),
])
def test_only_calls_that_wait_on_purpose_are_deliberate(code: str, inside: str, waits: bool) -> None:
    from modeldebug.rules.resources import deliberate_wait

    profile = {"lines": [{"code": code, "inside": inside, "share": 0.9}]}
    assert (deliberate_wait(profile) is not None) == waits


def test_the_call_that_starts_a_frameworks_loop_is_not_made_rarer() -> None:
    """Inside `trainer.train()` the user's innermost line is that call: listed, never the fix."""
    from modeldebug.rules.resources import named_line

    framework = {"lines": [{"code": "trainer.train()", "inside": "transformers.trainer.Trainer.train", "share": 0.9}]}
    own = {"lines": [{"code": "log_metrics(loss)", "inside": "", "share": 0.9}]}
    assert named_line(framework) is None and named_line(own) is not None


@pytest.mark.parametrize("level", ["detailed", "comprehensive"])
def test_the_sampler_starts_at_levels_that_sample_often(level: str) -> None:
    """Sampled every 5th or every step: the gaps are still judged over at least 10 steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    with md.watch(model, opt, db=":memory:", level=level) as s:
        for _ in range(120):
            x = torch.randn(32, 10)
            loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
            _plot(loss.item())
    (ev,) = s.record.events("gap_profile")
    assert _top_function(ev.data["lines"]) == "_busy"


def test_the_scripts_set_up_before_the_first_step_does_not_start_the_sampler() -> None:
    """The first step's gap holds everything the script did before training (data made, a model
    loaded): it armed the sampler at the first check in nearly every short run (blind1's 44-step
    healthy twin), which then woke its thread at every step's end."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    with md.watch(model, opt, db=":memory:") as s:  # (`modeldebug run` starts the session first)
        _busy(0.3)  # the set-up
        for _ in range(80):
            x = torch.randn(32, 10)
            loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert not s.tracer.gaps.done and s.record.events("gap_profile") == []  # never started


def test_a_step_ends_for_the_gap_when_the_users_code_runs_again() -> None:
    """What modeldebug does at a step's end (its row, a flush, the live progress line's redraw on a
    slow terminal, waking the sampler's thread: on a busy machine that held the training thread for
    milliseconds) was the next step's `t_data`, the user's time between steps, and read as "training
    waits for data" (medium) on healthy runs. A listener that takes 20 ms stands for that work here: with
    it counted, no gap can be shorter; without it, the loop's own gap is a `randn`."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.005)
    with md.watch(model, opt, db=":memory:") as s:
        s.tracer.listeners.append(lambda info: time.sleep(0.02))
        for _ in range(40):
            x = torch.randn(32, 10)
            loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
    t_data = s.record.column("t_data").values[1:]
    assert float(np.median(t_data)) < 0.02, float(np.median(t_data))  # (the listener's sleep is not in it)
    assert "dataloader_bottleneck" not in {f.kind for f in s.report().findings}


def test_a_pause_line_split_by_its_calls_is_still_a_pause() -> None:
    """`plt.draw(); plt.pause(0.1)` on one line: its samples split between the two calls (48% and 35%, as
    in MorvanZhou's conditional GAN); the line as a whole holds most of the gaps, and it waits on purpose."""
    from modeldebug.rules.resources import deliberate_wait

    code = "plt.ylim((0, 3));plt.legend(loc='upper right');plt.draw();plt.pause(0.1)"
    lines = [{"where": "train.py:94", "code": code, "inside": "matplotlib.pyplot.pause", "share": 0.48},
             {"where": "train.py:94", "code": code, "inside": "matplotlib.pyplot.draw", "share": 0.35},
             {"where": "train.py:62", "code": "z = torch.randn(64, 5)", "inside": "torch.randn", "share": 0.17}]
    assert deliberate_wait({"lines": lines}) is lines[0]
    busy = [dict(lines[0], share=0.3), dict(lines[2], share=0.7, where="train.py:62")]
    assert deliberate_wait({"lines": busy}) is None  # the pause holds under half of the gaps: not by design
