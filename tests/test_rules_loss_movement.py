"""LOS002 at chance says the inputs carry no signal only when the weights had room to learn."""

from __future__ import annotations

import torch
from torch import nn

import modeldebug as md
from modeldebug.catalogue import CATALOGUE


def _run(lr: float, steps: int, signal: bool) -> md.Report:
    """A 3-class MLP on fresh batches; `signal`: the labels follow the inputs (else drawn apart from them)."""
    torch.manual_seed(0)
    w = torch.randn(20, 3)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    with md.watch(model, opt, db=":memory:") as session:
        for _ in range(steps):
            x = torch.randn(32, 20)
            y = (x @ w).argmax(1) if signal else torch.randint(0, 3, (32,))
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return session.report()


def _los002(report: md.Report):  # type: ignore[no-untyped-def]
    hits = [f for f in report.findings if f.code == "LOS002"]
    return hits[0] if hits else None


def test_a_learning_rate_too_low_for_the_run_is_not_called_a_missing_signal() -> None:
    f = _los002(_run(lr=5e-5, steps=48, signal=True))  # AdamW at a fine-tuning rate, 48 steps, from scratch
    assert f is not None and f.severity == "medium"
    assert f.evidence["travelled"] < CATALOGUE.option("min_movement").default
    assert "learning rate" in f.description and "no usable signal" not in f.description
    assert "0.0005" in (f.recommendations[0].implementation or "")


def test_labels_unrelated_to_the_inputs_are_still_no_signal_when_the_weights_moved() -> None:
    f = _los002(_run(lr=1e-2, steps=120, signal=False))
    assert f is not None and f.severity == "high" and "no usable signal" in f.description
    assert "travelled" not in f.evidence


def test_the_same_model_at_a_working_rate_learns_and_is_silent() -> None:
    assert _los002(_run(lr=1e-2, steps=120, signal=True)) is None
