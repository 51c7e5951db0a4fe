"""GEN002: a validation loss that stays at the untrained level while the training loss falls (an EMA copy
whose update rebinds the loop variable, evaluated every epoch), with its healthy twins."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modeldebug as md


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, 10, generator=torch.Generator().manual_seed(0)) * 2.0
    y = torch.randint(0, 5, (n,), generator=g)
    return centres[y] + torch.randn(n, 10, generator=g), y


def _run(ema_update: str) -> md.Report:  # type: ignore[name-defined]
    """Eight epochs of 20 Adam steps; after each epoch, the EMA copy (or the model) is evaluated."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 5))
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _blobs(640, 1)
    xv, yv = _blobs(400, 2)

    @torch.no_grad()
    def update() -> None:
        for ema_p, p in zip(ema.parameters(), model.parameters()):
            if ema_update == "rebinds":
                ema_p = 0.9 * ema_p + 0.1 * p.detach()  # noqa: PLW2901 - the bug: a new tensor, the copy unchanged
            else:
                ema_p.mul_(0.9).add_(p.detach(), alpha=0.1)

    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _epoch in range(8):
            for i in range(20):
                xb, yb = x[32 * i:32 * i + 32], y[32 * i:32 * i + 32]
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                update()
            with torch.no_grad():
                F.cross_entropy((model if ema_update == "model" else ema)(xv), yv).item()
    return session.report()


@pytest.mark.parametrize("ema_update", ["rebinds", "in-place", "model"])
def test_an_ema_copy_that_never_changes_leaves_the_validation_loss_at_chance(ema_update: str) -> None:
    report = _run(ema_update)
    f = next((f for f in report.findings if f.kind == "validation_not_improving"), None)
    if ema_update != "rebinds":
        assert f is None, f.title
        return
    assert f is not None and f.severity == "high" and f.evidence["at_chance"] and report.findings[0] is f
    assert "ema_p.mul_(decay)" in (f.recommendations[0].implementation or "")
