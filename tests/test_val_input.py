"""DAT001 on the evaluation input: validation data not prepared like the training data (standardised with
the training statistics on the training split only, the raw features fed to validation). Twins: both
splits standardised alike; a training split augmented with noise (a wider spread, on purpose) and a
test split scaled by the model's own statistics; and a teacher's inference, which is not an evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md


def _features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0, 100.0, 1000.0, 5.0, 50.0, 0.5, 200.0], dtype=np.float32)
    x = rng.normal(3.0, 1.0, (n, 8)).astype(np.float32) * scale
    y = ((x[:, 0] / scale[0] - 3) + (x[:, 3] / scale[3] - 3) > 0).astype(np.int64)
    return x, y


def _run(how: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    xtr, ytr = _features(2048, 0)
    xva, yva = _features(512, 1)
    mu, sd = xtr.mean(0), xtr.std(0)
    tr = torch.tensor((xtr - mu) / sd)
    va = torch.tensor(xva if how == "raw_val" else (xva - mu) / sd)
    ytr_t, yva_t = torch.tensor(ytr), torch.tensor(yva)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for epoch in range(4):
            model.train()
            for i in range(0, 2048, 64):
                xb = tr[i:i + 64]
                if how == "augmented":
                    xb = xb + 0.8 * torch.randn_like(xb)  # noise on the training split only, on purpose
                loss = F.cross_entropy(model(xb), ytr_t[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                F.cross_entropy(model(va), yva_t)
    return s


def test_validation_features_left_raw_are_found_as_prepared_unlike_training() -> None:
    findings = _run("raw_val").report().findings
    (f,) = [f for f in findings if f.code == "DAT001"]
    assert f.severity == "high" and f.title.startswith("Validation input is on another scale")
    assert f.evidence["val_passes"] == 3 and f.evidence["std_ratio"] > 16
    assert "X_val = (X_val - mean) / std" in f.recommendations[0].implementation
    assert findings[0] is f


@pytest.mark.parametrize("how", ["standardised", "augmented"])
def test_validation_prepared_like_training_is_left_alone(how: str) -> None:
    s = _run(how)
    assert not [f for f in s.report().findings if f.code == "DAT001"]
    assert len(s.record.events("val_input")) == 3  # measured, and alike


def test_a_teachers_inference_is_not_an_evaluation() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 2)).eval()
    student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    x = torch.randn(640, 8)
    with md.watch(student, opt, db=":memory:") as s:
        for i in range(0, 640, 64):
            with torch.no_grad():
                soft = F.softmax(teacher(x[i:i + 64] * 100), 1)  # another scale: the teacher's own input
            loss = F.kl_div(F.log_softmax(student(x[i:i + 64]), 1), soft, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert not s.record.events("val_input")


@pytest.mark.parametrize("how", ["sampling", "one_state"])
def test_passes_without_a_loss_on_them_are_not_evaluations(how: str) -> None:
    """Sampling from the model (a diffusion sampler's start at sigma 80) or choosing an action for one state:
    no loss is computed on them, so their inputs (another scale by design) are not compared."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(2048, 8)
    with md.watch(model, opt, db=":memory:") as s:
        for i in range(0, 2048, 64):
            loss = F.mse_loss(model(x[i:i + 64] + 0.1 * torch.randn(64, 8)), x[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                model(torch.randn(64, 8) * 80 if how == "sampling" else x[i:i + 1] * 0.01)
    assert not s.record.events("val_input")
    assert not [f for f in s.report().findings if f.code == "DAT001"]
