"""Watching must not change the user's training: found by review, each with the run that showed it.

- The one-off probes run the model's ``forward`` on a private copy with torch's random state forked,
  but a ``forward`` may also draw from Python's ``random`` or NumPy's global stream (the teacher-forcing
  decoder of the seq2seq tutorials): the probe's draws shifted every later number of a seeded run.
- The gap profiler's thread kept the last stack it sampled, and with it the locals of a function of the
  user's that had returned (a batch), alive through the next step.
- The registry's module entries held their model strongly, and its caches the parameters: every model a
  script let go (k-fold training in one script) stayed alive, weights and gradients, to the run's end.
- ``torch.jit.trace`` of a watched model (a TorchScript or ONNX export at the end of training) ran our
  hooks inside the trace: its sanity check failed, and the traced numbers in the record crashed the
  session's exit.
"""

from __future__ import annotations

import gc
import random
import time
import weakref
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug as md


class TeacherForced(nn.Module):
    """A decoder that feeds the target or its own prediction, drawn with Python's and NumPy's random."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.cell = nn.GRUCell(8, 8)
        self.out = nn.Linear(8, 10)

    def forward(self, src: torch.Tensor, trg: torch.Tensor) -> torch.Tensor:
        h = self.emb(src).mean(1)
        inp, outs = trg[:, 0], []
        for t in range(1, trg.shape[1]):
            h = self.cell(self.emb(inp), h)
            o = self.out(h)
            outs.append(o)
            forced = random.random() < 0.5 or np.random.rand() < 0.1
            inp = trg[:, t] if forced else o.argmax(1)
        return torch.stack(outs, 1)


def _seq2seq(watched: bool) -> tuple[list[Any], list[str]]:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    model = TeacherForced()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen: list[Any] = []
    session = md.watch(model, opt, db=":memory:") if watched else None
    if session is not None:
        session.__enter__()
    try:
        for _ in range(4):
            src, trg = torch.randint(0, 10, (6, 5)), torch.randint(0, 10, (6, 5))
            loss = nn.functional.cross_entropy(
                model(src, trg).reshape(-1, 10), trg[:, 1:].reshape(-1)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append((loss.item(), random.random(), float(np.random.rand())))
        model.eval()
        # the first evaluation pass: the eval-dropout probe runs on its copy
        with torch.no_grad():
            seen.append(model(src, trg).sum().item())
        seen.append((random.random(), float(np.random.rand())))
    finally:
        if session is not None:
            session.__exit__(None, None, None)
    if session is None:
        return seen, []
    probes = ("batch_mixing_probe", "eval_dropout")
    return seen, [e.kind for k in probes for e in session.record.events(k)]


def test_probes_leave_pythons_and_numpys_random_streams_alone() -> None:
    plain, _ = _seq2seq(False)
    watched, probes = _seq2seq(True)
    # both probes ran their copy's forward
    assert sorted(probes) == ["batch_mixing_probe", "eval_dropout"]
    assert watched == plain  # exact: losses and the script's own later draws


def test_gap_profiler_keeps_no_returned_frame_alive() -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    refs: list[weakref.ref[torch.Tensor]] = []

    def load() -> float:  # the gap between steps: a batch made, the loop waits
        t = torch.randn(256, 1024)
        refs.append(weakref.ref(t))
        time.sleep(0.02)
        return float(t[0, 0])

    kept = 0
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(40):
            load()
            x = torch.randn(4, 8)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            # freed when load() returned, as in a plain run
            kept += refs[-1]() is not None
    (profile,) = [e.data for e in s.record.events("gap_profile")]
    assert profile["samples"] > 0  # the profiler sampled those gaps
    assert kept == 0


def test_a_model_the_script_lets_go_is_freed() -> None:
    """k-fold training in one script (`modeldebug run` watches every model it finds): each fold's model,
    optimizer, weights and gradients are freed when the fold returns (30 steps a fold: the third fold
    has no sampled step at `basic`, so its model is known only through its optimizer)."""
    torch.manual_seed(0)
    alive: list[tuple[int, int]] = []

    def fold() -> list[weakref.ref[Any]]:
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(30):
            loss = nn.functional.cross_entropy(
                model(torch.randn(8, 16)), torch.randint(0, 2, (8,))
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [
            weakref.ref(model),
            weakref.ref(opt),
            *(weakref.ref(p) for p in model.parameters()),
        ]

    with md.watch(db=":memory:"):
        for _ in range(3):
            refs = fold()
            gc.collect()
            alive.append(
                (
                    sum(r() is not None for r in refs[:2]),
                    sum(r() is not None for r in refs[2:]),
                )
            )
    assert alive == [(0, 0)] * 3


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _WithLoss(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.model(x), y)


@pytest.mark.parametrize("case", ["sampled_step", "first_evaluation", "loss_inside"])
def test_jit_trace_of_a_watched_model(case: str) -> None:
    """A TorchScript export after training: on a sampled step (module hooks on), as the first
    evaluation pass (the eval-dropout probe's moment), and of a module whose forward computes the loss."""
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    level = "basic" if case == "first_evaluation" else "comprehensive"
    with md.watch(model, opt, db=":memory:", level=level) as s:
        for _ in range(7):  # (step 7: not sampled at `basic`)
            x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
        model.eval()
        if case == "loss_inside":
            traced = torch.jit.trace(_WithLoss(model), (x, y))
            assert torch.equal(traced(x, y), _WithLoss(model)(x, y))
        else:
            with torch.no_grad() if case == "first_evaluation" else torch.enable_grad():
                traced = torch.jit.trace(model, x)
            assert torch.equal(traced(x), model(x))
    assert [e.data for e in s.record.events("internal_error")] == []
