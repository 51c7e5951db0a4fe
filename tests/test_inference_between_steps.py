"""Forward passes without gradients between training steps: a distillation teacher, a DQN target
network, a frozen feature extractor. They are part of the training computation, not data loading
(PRF001) and not a validation set (DAT004), and a second model starting to train is not a loss spike
(the repro bundle).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md

STEPS = 120


def _busy(seconds: float) -> None:
    """Python work for `seconds`: a batch built sample by sample in the loop."""
    end, acc = time.perf_counter() + seconds, 0.0
    while time.perf_counter() < end:
        acc += math.sin(acc)


def _teacher() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def _distil(between: str):  # type: ignore[no-untyped-def]
    """A small student distilled from a large teacher, on tensors built once (no DataLoader).
    `between`: "teacher" (the teacher's inference on each batch before the student's step) or "data"
    (the teacher's outputs precomputed; as long a gap spent building each batch in Python)."""
    torch.manual_seed(0)
    teacher = _teacher().eval()
    student = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    x_all = torch.randn(STEPS * 64, 64)
    with torch.no_grad():
        t0 = time.perf_counter()
        soft_all = F.softmax(teacher(x_all[:64]), 1)
        teacher_s = time.perf_counter() - t0
    if between == "data":
        with torch.no_grad():
            soft_all = F.softmax(teacher(x_all), 1)
    with md.watch(student, opt, db=":memory:") as s:
        for step in range(STEPS):
            xb = x_all[step * 64:(step + 1) * 64]
            if between == "teacher":
                with torch.no_grad():
                    soft = F.softmax(teacher(xb), 1)
            else:
                _busy(max(teacher_s, 0.004))  # the same gap, spent preparing the batch
                soft = soft_all[step * 64:(step + 1) * 64]
            loss = F.kl_div(F.log_softmax(student(xb), 1), soft, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s


@pytest.mark.parametrize("between", ["teacher", "data"])
def test_a_teacher_inference_between_steps_is_not_a_wait_for_data(between: str) -> None:
    s = _distil(between)
    rec = s.record
    gap = np.nanmedian(rec.column("t_data").values[1:])
    inference = np.nanmedian(rec.column("t_inference").values[1:])
    step = np.nanmedian(rec.column("t_step").values[1:])
    prf = [f for f in s.report().findings if f.code == "PRF001"]
    if between == "teacher":
        assert gap / step > 0.3  # the teacher holds a large part of each step...
        assert inference > 0.8 * gap  # ...and it is measured as inference
        assert not prf
    else:
        assert inference == 0
        assert prf and prf[0].severity in ("medium", "high")  # the same gap spent on data is the finding


def _dqn(evaluate_policy: bool, every_model: bool):  # type: ignore[no-untyped-def]
    """DQN on a replay buffer: the target network's no-grad pass reads next states, which are also
    the states other transitions train on. `evaluate_policy`: the trained network itself is also
    evaluated, under no_grad, on states it trained on (a validation set that overlaps training).
    `every_model`: watch every model of the process (as `modeldebug run` does), else the policy only."""
    torch.manual_seed(0)
    states = torch.randn(1025, 8)  # a trajectory: transition i goes from states[i] to states[i + 1]
    actions = torch.randint(0, 4, (1024,))
    rewards = torch.randn(1024)
    policy = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    target = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    target.load_state_dict(policy.state_dict())
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    with (md.watch(optimizer=opt, db=":memory:") if every_model else md.watch(policy, opt, db=":memory:")) as s:
        for step in range(150):
            idx = torch.randint(0, 1024, (64,), generator=g)
            with torch.no_grad():
                q_next = target(states[idx + 1]).max(1).values
            q = policy(states[idx]).gather(1, actions[idx, None]).squeeze(1)
            loss = F.smooth_l1_loss(q, rewards[idx] + 0.9 * q_next)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 49:
                target.load_state_dict(policy.state_dict())
                if evaluate_policy:
                    with torch.no_grad():
                        policy(states[:512])
    return s


@pytest.mark.parametrize("every_model", [True, False], ids=["every-model", "policy-watched"])
@pytest.mark.parametrize("evaluate_policy", [False, True])
def test_a_target_network_reading_training_states_is_not_a_validation_leak(evaluate_policy: bool,
                                                                           every_model: bool) -> None:
    leak = [f for f in _dqn(evaluate_policy, every_model).report().findings if f.kind == "data_leakage"]
    if evaluate_policy:  # the trained network evaluated on its own training states: that overlap is reported
        assert leak
    else:
        assert not leak


def test_a_student_starting_after_its_teacher_is_not_a_loss_spike(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The teacher trains to a low loss, then a fresh student starts high: a new curve, not a spike."""
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = (x[:, 0] > 0).long()
    teacher = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    student = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    db = tmp_path / "run.db"
    with md.watch(teacher, db=str(db)) as s:
        t_opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
        for i in range(80):
            loss = F.cross_entropy(teacher(x[i % 8 * 64:(i % 8 + 1) * 64]), y[i % 8 * 64:(i % 8 + 1) * 64])
            t_opt.zero_grad()
            loss.backward()
            t_opt.step()
        s_opt = torch.optim.SGD(student.parameters(), lr=0.05)
        for i in range(40):
            xb = x[i % 8 * 64:(i % 8 + 1) * 64]
            with torch.no_grad():
                soft = F.softmax(teacher(xb) / 2, 1)
            loss = F.kl_div(F.log_softmax(student(xb) / 2, 1), soft, reduction="batchmean")
            s_opt.zero_grad()
            loss.backward()
            s_opt.step()
    assert "bundle" not in s.record.meta
    assert not list(tmp_path.glob("*bundle*"))


def test_a_schema_3_record_reads_t_inference_as_not_measured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from modeldebug.record import Record, RunWriter

    path = tmp_path / "old.db"
    w = RunWriter(path)
    w.add_step(0, loss=1.0, t_data=0.01, sampled=True)
    w.set_meta(schema_version=3)
    w.close()
    with sqlite3.connect(path) as c:  # the layout of version 3: no t_inference column
        c.execute("ALTER TABLE steps DROP COLUMN t_inference")
    rec = Record.open(path)
    assert rec.column("t_data").values.tolist() == [0.01]
    assert math.isnan(rec.column("t_inference").values[0])
