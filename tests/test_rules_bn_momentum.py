"""LOP002's BatchNorm(momentum=0): running statistics that never leave 0 and 1 (blind5's CNN: the
training curve matches the healthy twin's, the validation accuracy is 0.35-0.74 against 0.98)."""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious, watched
from torch import nn


@pytest.mark.parametrize("momentum", [0.0, 0.1, None])
def test_batchnorm_momentum_zero_freezes_the_running_statistics(momentum: float | None) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g) * 3 + 5  # far from 0 / 1: the frozen statistics matter
    y = (x[:, 0] > 5).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, momentum=momentum), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def loop() -> None:
        for epoch in range(3):
            model.train()
            for i in range(0, 448, 32):
                loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                nn.functional.cross_entropy(model(x[448:]), y[448:])

    report = watched(model, loop)
    f = found(report, "train_mode_misuse")
    if momentum != 0.0:
        assert f is None and not serious(report), serious(report)
        return
    assert f is not None and f.severity == "high" and "momentum=0" in f.title and f.evidence["layers"] == ["1"]
    assert report.findings[0] is f


@pytest.mark.parametrize("case", ["loaded_and_frozen", "numpy_momentum"])
def test_momentum_zero_over_loaded_statistics_and_a_numpy_momentum(case: str) -> None:
    """A review's cases: momentum=0 set on a backbone whose statistics were loaded (the usual way to
    freeze them) is not judged; a NumPy float momentum (0.01) must not switch the forward probe off."""
    import numpy as np

    torch.manual_seed(0)
    x, y = torch.randn(256, 8) * 2 + 3, torch.randint(0, 2, (256,))
    bn = nn.BatchNorm1d(16, momentum=np.float32(0.01) if case == "numpy_momentum" else 0.1)
    model = nn.Sequential(nn.Linear(8, 16), bn, nn.ReLU(), nn.Linear(16, 2))
    if case == "loaded_and_frozen":
        with torch.no_grad():
            model.train()
            for i in range(0, 256, 32):  # "pretrained": statistics far from 0 and 1
                model(x[i:i + 32])
        bn.momentum = 0.0
    opt = torch.optim.SGD(model[3].parameters(), lr=0.05)

    def loop() -> None:
        for epoch in range(2):
            model.train()
            for i in range(0, 224, 32):
                loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                nn.functional.cross_entropy(model(x[224:]), y[224:])

    report = watched(model, loop)
    assert found(report, "train_mode_misuse") is None
    assert not report.record.events("internal_error"), report.record.events("internal_error")
