"""Rules judged by the effect of a fault at realistic severity (issue 14, item 4), each with a healthy twin.

Real seeded tiny trainings, most of them the settings of benchmarks/severity_sweep.py (loaded from
there, so that the sweep and these tests dial the same faults): exploding gradients judged by what
the loss did, gradients huge from the first step, class imbalance rated by whether the model
predicts the rare class, strong decoupled weight decay judged by lr x weight_decay, data read in
label order when only partly sorted.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.testing import Data, train

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "severity_sweep.py"


@pytest.fixture(scope="module")
def sweep():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("severity_sweep", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["severity_sweep"] = module
    spec.loader.exec_module(module)
    return module


def _find(report: Any, code: str) -> tuple[Any, str] | None:
    """The finding of `code` (as a root cause, or the severity it had folded into one), and where."""
    for i, f in enumerate(report.findings):
        if f.code == code:
            return f, "first" if i == 0 else "cause"
        for sym in f.evidence.get("symptoms", []):
            if sym["code"] == code:
                return sym, f"symptom of {f.code}"
    return None


def _severity(report: Any, code: str) -> str | None:
    hit = _find(report, code)
    if hit is None:
        return None
    return hit[0]["severity"] if isinstance(hit[0], dict) else hit[0].severity


# -- GRD001: judged by the loss, not by growth from a tiny start --------------------------------------
def _small_start(lr: float) -> Any:
    """A tanh MLP initialised small (std 0.01, no output bias): its gradients start about 100x below
    their working size and grow while the loss falls. SGD with momentum at `lr`."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 10, generator=g)
    y = x[:, :3].sum(1, keepdim=True).tanh() * 3
    model = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1, bias=False))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with md.watch(model, db=":memory:") as s:
        losses = train(model, Data(x, y, nn.MSELoss()), steps=80, optimizer=opt)
    return s.report(md.DebuggingConfig(ignore=["PRF"])), losses


def test_gradients_growing_from_a_tiny_start_while_the_loss_falls_are_not_exploding() -> None:
    report, losses = _small_start(0.05)
    grad = report.record.column("grad_norm").values
    assert grad[10:].max() / grad[:5].min() >= 100  # what the growth-only rule fired on
    assert losses[-1] < 0.05 * losses[0]            # while the loss fell 20x
    assert _find(report, "GRD001") is None


def test_the_same_model_at_a_rate_that_diverges_is_found_high() -> None:
    report, losses = _small_start(0.2)
    assert not math.isfinite(losses[-1])
    assert _severity(report, "GRD001") == "high"


def test_a_spike_the_run_recovers_from_is_low(sweep) -> None:  # type: ignore[no-untyped-def]
    """The sigmoid MLP of the ACT002 sweep at PyTorch's default init: its loss jumps from 0.04 to 80 at
    steps 5-9 with the gradient, then comes back to 0.05. Reported, but low: the result was not hurt."""
    report = sweep.saturated_activations(0)
    loss = report.record.column("loss").values
    assert loss[:12].max() > 100 * loss[0] and loss[-10:].max() < 2 * loss[0]
    f = next(f for f in report.findings if f.code == "GRD001")
    assert f.severity == "low" and f.evidence["loss_effect"]["recovered"]
    assert not [x for x in report.findings if x.severity in ("medium", "high")]


@pytest.mark.parametrize("std", [0.25, 0.3])
def test_rnn_gradients_exploding_from_the_first_step_are_found_as_the_cause_of_the_nan(sweep, std: float) -> None:  # type: ignore[no-untyped-def]
    report = sweep.exploding_rnn(std)
    first = report.findings[0]
    assert first.code == "GRD001" and first.severity == "high" and first.step == 0
    assert first.evidence["grad_to_weight"] > 1
    assert "nonfinite" in {s["kind"] for s in first.evidence.get("symptoms", [])}


@pytest.mark.parametrize("std", [0.0, 0.2])
def test_rnn_with_a_large_first_gradient_that_trains_on_is_not_exploding(sweep, std: float) -> None:  # type: ignore[no-untyped-def]
    report = sweep.exploding_rnn(std)  # std 0.2: the first gradient is 1.2x the weights, then training settles
    assert _find(report, "GRD001") is None
    assert not [f for f in report.findings if f.severity in ("medium", "high")]


# -- DAT003: severity from whether the model predicts the rare class -----------------------------------
def test_an_imbalance_the_model_learns_is_low_and_says_it_was_measured(sweep) -> None:  # type: ignore[no-untyped-def]
    report = sweep.separable_imbalance(100)  # minority recall 0.93 (measured without watching)
    f = next(f for f in report.findings if f.code == "DAT003")
    assert f.severity == "low" and f.evidence["rare_class_learned"]
    assert f.evidence["rare_class_loss_bound"] < math.log(2) and "handles it" in f.description


def test_an_imbalance_whose_effect_cannot_be_measured_stays_medium_and_says_so(sweep) -> None:  # type: ignore[no-untyped-def]
    report = sweep.separable_imbalance(1000)  # 8 minority samples in 8192: none on a late sampled step
    f = next(f for f in report.findings if f.code == "DAT003")
    assert f.severity == "medium" and "could not be measured" in f.description


def test_an_imbalance_the_model_collapses_on_is_high_and_balanced_data_is_silent(sweep) -> None:  # type: ignore[no-untyped-def]
    assert _severity(sweep.class_imbalance(100), "DAT003") == "high"
    assert _find(sweep.separable_imbalance(1), "DAT003") is None


# -- WGT001: lr x weight_decay as evidence --------------------------------------------------------------
def test_decoupled_weight_decay_removing_5_percent_a_step_is_found(sweep) -> None:  # type: ignore[no-untyped-def]
    report = sweep.decoupled_weight_decay(5.0)  # AdamW lr 1e-2: final loss ~0.38 where wd 0.01 reaches ~0.09
    f = next(f for f in report.findings if f.code == "WGT001")
    assert f.severity in ("medium", "high") and f.evidence["decay_per_step"] == pytest.approx(0.05)
    assert "1/weight_decay" in f.description


@pytest.mark.parametrize("wd", [0.01, 0.5])
def test_usual_and_moderate_decoupled_weight_decay_is_silent(sweep, wd: float) -> None:  # type: ignore[no-untyped-def]
    assert _find(sweep.decoupled_weight_decay(wd), "WGT001") is None


# -- LBL001: data read in label order, partly shuffled ---------------------------------------------------
@pytest.mark.parametrize("keep, severity", [(0.9, "high"), (0.5, "medium")])
def test_partly_sorted_data_is_found_first_with_the_rate_as_its_symptom(sweep, keep: float, severity: str) -> None:  # type: ignore[no-untyped-def]
    report = sweep.not_shuffled(keep)
    first = report.findings[0]
    assert first.code == "LBL001" and first.evidence["batch_label_correlation"] >= 0.1
    assert first.severity in (severity, "high")
    assert not [f for f in report.findings if f.code in ("LRN001", "DAT003")]  # folded into it, not beside it


def test_shuffled_data_has_no_label_order_finding(sweep) -> None:  # type: ignore[no-untyped-def]
    report = sweep.not_shuffled(0.0)
    assert _find(report, "LBL001") is None and report.findings == []


@pytest.mark.parametrize("classes, batch, batches", [(3, 32, 7), (10, 8, 7), (100, 8, 12), (1000, 32, 12), (2, 128, 8)])
def test_shuffled_batches_of_any_class_count_are_not_taken_for_label_order(classes: int, batch: int, batches: int) -> None:
    """Small expected counts (many classes, small batches) must not pass for order: 200 draws each."""
    import numpy as np

    from modeldebug.rules.labels import LabelCounts

    rng = np.random.default_rng(classes)
    p = 1 / np.arange(1, classes + 1) ** 1.1  # a Zipf-like skew, as real labels have
    p /= p.sum()
    flagged = 0
    for _ in range(200):
        lc = LabelCounts(loss=None, per_batch=[rng.multinomial(batch, p).astype(float) for _ in range(batches)],  # type: ignore[arg-type]
                         steps=list(range(batches)))
        rho = lc.ordering()
        flagged += rho is not None and rho >= 0.1
    assert flagged == 0
