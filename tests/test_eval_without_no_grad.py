"""Evaluation passes written without ``torch.no_grad()`` (``model.eval()``, then ``model(x_val)`` with
autograd on: tutorials often do). Such a pass, taken between two training steps by a model that trains
in train mode, is an evaluation: its time and what runs beside it (a plot, a log) belong to the gap
between steps, not to the next step's forward pass, and its batch is validation data, not training
data. A model left in eval mode after a validation (``model.train()`` never called again) trains in
eval mode: its next backward pass makes that pass the step's forward pass again.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md

STEPS = 160


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    return x, (x[:, :4].sum(1) > 0).long()


def _run(*, pause: float = 0.0, val_on_train: bool = False, back_to_train: bool = True,  # type: ignore[no-untyped-def]
         before: bool = False):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.1), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data(STEPS * 32, 0)
    x_val, y_val = (x[:256], y[:256]) if val_on_train else _data(256, 1)
    val_losses = []
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(STEPS):
            xb, yb = x[step * 32:(step + 1) * 32], y[step * 32:(step + 1) * 32]
            if before and step % 10 == 0:  # an evaluation at the start of each block, the first before any step
                model.eval()
                val_losses.append(F.cross_entropy(model(x_val), y_val).item())
                model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 9:
                model.eval()  # no torch.no_grad(): autograd records the validation pass
                val_losses.append(F.cross_entropy(model(x_val), y_val).item())
                time.sleep(pause)  # a plot shown for a moment
                if back_to_train:
                    model.train()
    return s


def _after_validation(s, column: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    rec = s.record
    steps, values = rec.column(column).steps, rec.column(column).values
    return values[(steps % 10 == 0) & (steps > 0)]


def test_the_time_beside_an_evaluation_without_no_grad_is_between_steps() -> None:
    s = _run(pause=0.03)
    forward = _after_validation(s, "t_forward")
    gap = _after_validation(s, "t_data")
    assert len(forward) >= 10
    assert np.nanmedian(forward) < 0.01  # the step's forward pass alone (it held the pause before)
    assert np.nanmedian(gap) >= 0.025  # the pause is in the gap before the step...
    assert np.nanmedian(_after_validation(s, "t_inference")) >= 0.025  # ...after the evaluation began
    findings = s.report().findings
    assert not [f for f in findings if f.code == "PRF001"]  # an evaluation, not a wait for data
    slow = [f for f in findings if f.code == "PRF002"]
    assert not slow or slow[0].severity == "low"  # a pause on purpose (time.sleep), named by the stack samples


def test_a_model_left_in_eval_mode_after_validation_still_has_its_forward_pass_timed() -> None:
    s = _run(back_to_train=False)
    rec = s.record
    steps, forward = rec.column("t_forward").steps, rec.column("t_forward").values
    late = forward[steps > 20]
    assert len(late) > 100 and np.all(late > 0)  # every step after the first validation: eval mode, timed
    findings = s.report().findings
    assert [f for f in findings if f.code == "LOP002"]  # training in eval mode is the finding
    assert not [f for f in findings if f.code == "PRF001"]


def test_an_evaluation_without_no_grad_on_training_samples_is_a_leak() -> None:
    leaked = [f for f in _run(val_on_train=True).report().findings if f.code == "DAT004"]
    assert leaked and leaked[0].evidence["fraction_of_val"] >= 0.4  # (of the training samples fingerprinted)
    assert not [f for f in _run().report().findings if f.code == "DAT004"]  # held-out samples: no leak


def test_an_evaluation_before_the_first_step_is_not_taken_for_training_data() -> None:
    """The first evaluation comes before the model ever trained: in eval mode with autograd on, it could be
    a training pass (a model trained in eval mode), so its batch is fingerprinted as neither; the later ones,
    on the same held-out data, are validation, and they are no leak."""
    s = _run(before=True)
    assert not [f for f in s.report().findings if f.code == "DAT004"]


def test_a_pause_on_purpose_does_not_hide_a_memory_leak_beside_it() -> None:
    """A plot shown every 10 steps (PRF002, low: slow by design) explains no memory growth: the
    growth of a loop that keeps every loss tensor, graph and all, stays a finding of its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 4096), nn.ReLU(), nn.Linear(4096, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = _data(STEPS * 32, 0)
    kept = []
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(STEPS):
            loss = F.cross_entropy(model(x[step * 32:(step + 1) * 32]), y[step * 32:(step + 1) * 32])
            opt.zero_grad()
            loss.backward(retain_graph=True)
            opt.step()
            kept.append(loss)  # the graph (and its 32 x 4096 activations) of every step
            if step % 10 == 9:
                time.sleep(0.1)  # a plot shown for a moment (most of the run, however busy the machine)
    findings = s.report().findings
    slow = [f for f in findings if f.code == "PRF002"]
    assert slow and slow[0].severity == "low"
    assert [f for f in findings if f.code == "MEM001" and f.severity in ("medium", "high")]


def test_a_frozen_extractor_in_eval_mode_feeding_the_next_stage_is_not_an_evaluation() -> None:
    """Stage 1 trains an encoder; stage 2 freezes it (eval mode, requires_grad off) and trains a head on
    its features, autograd on: the encoder's passes are the head's training input, not validation."""
    torch.manual_seed(0)
    enc, dec = nn.Sequential(nn.Linear(16, 8), nn.Tanh()), nn.Linear(8, 16)
    head = nn.Linear(8, 2)
    x, y = _data(64 * 32, 0)
    with md.watch(nn.ModuleDict({"enc": enc, "dec": dec, "head": head}), db=":memory:") as s:
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-2)
        for i in range(0, 2048, 64):
            loss = F.mse_loss(dec(enc(x[i:i + 64])), x[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        enc.eval()
        enc.requires_grad_(False)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        for i in range(0, 2048, 64):
            loss = F.cross_entropy(head(enc(x[i:i + 64])), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert not [f for f in s.report().findings if f.code == "DAT004"]
    assert not s.record.events("val_input")


def test_a_one_feature_grid_evaluated_again_with_fresh_noise_is_no_leak() -> None:
    """A 1-D regression tutorial: train on y = x + noise over a linspace grid, evaluate on the same grid with
    other noise. Equal single-value inputs are grid points, not the same samples."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 20).unsqueeze(1)
    y, y_test = x + 0.3 * torch.randn(20, 1), x + 0.3 * torch.randn(20, 1)
    model = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for t in range(200):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if t % 10 == 0:
                model.eval()
                F.mse_loss(model(x), y_test).item()  # no torch.no_grad(), as the tutorial
                model.train()
    assert not [f for f in s.report().findings if f.code == "DAT004"]
