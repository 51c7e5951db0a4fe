"""`detailed`'s time budget: the sampled steps add at most `TIME_BUDGET` to the average step."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture.sampler import EARLY_STEPS, TIME_BUDGET, Sampler
from modeldebug.config import DebuggingConfig


def _feed(sampler: Sampler, plain: float, sample: float, steps: range) -> list[int]:
    """Drive the sampler as the tracer does: each step's wall time at its end; the sampled steps."""
    sampled = []
    for step in steps:
        now = sampler.sampled(step)
        if now:
            sampled.append(step)
        sampler.timed(step, sample if now else plain, now)
    return sampled


def test_a_sample_as_dear_as_a_step_is_taken_every_20_steps() -> None:
    s = Sampler(DebuggingConfig(analysis_level="detailed"))
    assert s.time_budget == TIME_BUDGET["detailed"] == 0.05
    sampled = _feed(s, plain=0.010, sample=0.020, steps=range(400))
    assert s.every == 20 and abs(s.sample_cost - 1.0) < 1e-9  # type: ignore[operator]
    late = [t for t in sampled if t > 40]
    assert late == list(range(60, 400, 20))
    # what the samples add on average is within the budget
    assert len(late) * 0.010 / (400 - 40) <= 0.05 * 0.010 + 1e-12


def test_a_cheap_sample_keeps_the_levels_interval() -> None:
    s = Sampler(DebuggingConfig(analysis_level="detailed"))
    sampled = _feed(s, plain=0.010, sample=0.0110, steps=range(200))  # +10% of a step
    assert s.every == 5 and [t for t in sampled if t > 20] == list(range(25, 200, 5))


def test_the_interval_climbs_a_ladder_at_most_two_rungs_at_once_and_narrows_with_room_to_spare() -> None:
    s = Sampler(DebuggingConfig(analysis_level="detailed"))
    seen = []
    for step in range(3000):  # each sample costs 50 steps (0.5 s on a 10 ms step): wants every 1,000+
        now = s.sampled(step)
        if s.timed(step, 0.510 if now else 0.010, now):
            seen.append(s.every)
    assert seen == [20, 80, 320, 1280]  # 5 * 2**k, at most fourfold a sample
    # the cost falls to 0.9 steps: the median of the last three samples follows, the interval narrows
    _feed(s, plain=0.010, sample=0.019, steps=range(3000, 14_000))
    assert s.every == 40  # 0.9 / 5% = 18 steps; narrowed to use at most 80% of the budget: 22.5 -> 40
    # near a boundary (19.6-20.4 steps wanted, by turns) it stays put
    changes = 0
    for i, cost in enumerate([1.02, 0.98, 1.02, 0.98, 1.02]):
        for step in range(14_000 + 100 * i, 14_100 + 100 * i):
            now = s.sampled(step)
            changes += s.timed(step, 0.010 * (1 + cost) if now else 0.010, now)
    assert s.every == 40 and changes == 0


def test_every_rung_holds_the_sampled_steps_of_the_rungs_above_it() -> None:
    """Two runs whose machines chose different intervals still share the sparser one's samples."""
    fast, slow = Sampler(DebuggingConfig(analysis_level="detailed")), Sampler(DebuggingConfig(analysis_level="detailed"))
    a = set(_feed(fast, plain=0.010, sample=0.020, steps=range(2000)))  # every 20
    b = set(_feed(slow, plain=0.010, sample=0.050, steps=range(2000)))  # every 80
    assert fast.every == 20 and slow.every == 80
    assert {t for t in b if t > 400} <= a


def test_a_pause_in_a_step_counts_as_two_steps_at_most() -> None:
    """A garbage collection or the machine stalling one step for 50 steps' time is not a sample's
    cost: an unsampled step counts as twice the usual at most."""
    s = Sampler(DebuggingConfig(analysis_level="detailed"))
    for step in range(11):
        now = s.sampled(step)
        s.timed(step, 0.0105 if now else (0.5 if step == 7 else 0.010), now)
    assert 1.0 < s._costs[-1] < 1.1  # the last window's: 0.05 for the sample, 1 for the pause


def test_no_time_budget_while_device_steps_are_read_late() -> None:
    """With deferred copies (a CUDA device; here the test copier that defers every step) the host runs
    ahead of the device and a sampled step, read at once, first waits for the queue: its time is not
    its cost, so the level's interval is kept."""
    from modeldebug.capture.deferred import LaggingCopier

    torch.manual_seed(0)
    model = _deep(60)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 16), torch.randint(0, 2, (16,))
    with md.watch(model, opt, level="detailed", db=":memory:") as session:
        session.tracer.assembler.copier = LaggingCopier(2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert not list(session.record.events("sampling"))
    steps = session.record.column("sampled")
    assert [int(t) for t, v in zip(steps.steps, steps.values) if v] == sorted(set(range(0, 60, 5)) | {1, 2})


def test_basic_comprehensive_and_an_explicit_interval_have_no_time_budget() -> None:
    for config in (DebuggingConfig(), DebuggingConfig(analysis_level="comprehensive"),
                   DebuggingConfig(analysis_level="detailed", sample_every=5)):
        s = Sampler(config)
        assert s.time_budget is None
    assert Sampler(DebuggingConfig(analysis_level="detailed")).time_budget is not None


def test_warm_up_and_back_to_back_samples_are_not_judged() -> None:
    s = Sampler(DebuggingConfig(analysis_level="detailed"))
    for step in (0, 1, 2):  # the first steps build caches: not a sample's cost
        assert not s.timed(step, 5.0, True)
    assert s.sample_cost is None and s.every == 5
    assert not s.timed(3, 0.01, False) and not s.timed(5, 1.0, True)  # one plain step: not enough to compare
    assert s.sample_cost is None


def _deep(depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(16, 16), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(16, 2))


def _train(config: DebuggingConfig, steps: int) -> md.WatchSession:
    torch.manual_seed(0)
    model = _deep(60)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 16), torch.randint(0, 2, (16,))
    with md.watch(model, opt, config=config, db=":memory:") as session:
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return session


def test_a_deep_model_at_detailed_is_sampled_less_often_and_says_so() -> None:
    # A sampled step measures 121 leaf outputs and 122 parameter tensors one by one in Python; an
    # unsampled one has no module hook: on any machine a sample costs several steps.
    session = _train(DebuggingConfig(analysis_level="detailed"), 120)
    events = [e for e in session.record.events("sampling")]
    assert events, "no sampling event: the interval was not widened"
    first = events[0]
    every = json.loads(first.data) if isinstance(first.data, str) else first.data
    assert every["every"] > 5 and every["every"] % 5 == 0 and every["time_budget"] == 0.05
    assert every["sample_cost_steps"] > 0.25  # more than 5% x 5 steps: the level's interval would break the budget
    steps = session.record.column("sampled")
    sampled = [int(t) for t, v in zip(steps.steps, steps.values) if v]
    later = [t for t in sampled if t > first.step and t not in EARLY_STEPS]
    # (on a machine busy enough the interval outgrows the run: then no later sample is due)
    assert (later or first.step + every["every"] >= 120) and all(t % 5 == 0 for t in later)
    assert len(sampled) < len(EARLY_STEPS) + 120 // 5  # fewer samples than every 5th step


def test_the_same_model_with_an_explicit_interval_keeps_it() -> None:
    session = _train(DebuggingConfig(analysis_level="detailed", sample_every=5), 60)
    assert not list(session.record.events("sampling"))
    steps = session.record.column("sampled")
    sampled = [int(t) for t, v in zip(steps.steps, steps.values) if v]
    assert sampled == sorted(set(range(0, 60, 5)) | {1, 2})


@pytest.mark.timing
def test_the_users_work_between_steps_is_not_taken_for_a_samples_cost() -> None:
    """An evaluation or checkpoint between steps (here a sleep of 0.1 s before each step that will be
    sampled, hundreds of this model's steps) is not ours: the budget times each step from its first
    forward pass, so the costs it records are those of the samples alone."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(256, 64), torch.randint(0, 4, (256,))
    pause = 0.1
    with md.watch(model, opt, level="detailed", db=":memory:") as session:
        for step in range(60):
            if step % 5 == 0 and step > 2:
                time.sleep(pause)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    rec = session.record
    sampled = rec.column("sampled").values.astype(bool)
    t_data, t_step = rec.column("t_data").values, rec.column("t_step").values
    assert (t_data[5::5][:5] >= pause).all()  # the pauses are there, between the steps
    usual = float(np.median(t_step[~sampled]))
    costs = [e.data["sample_cost_steps"] for e in rec.events("sampling")]
    assert costs, "a sample of this small model costs more than 5% x 5 steps: the interval widens"
    assert max(costs) < 0.5 * pause / usual, (costs, pause / usual)
