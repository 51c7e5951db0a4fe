"""A functional dropout that ignores model.eval() (LOP002's eval-dropout path).

``F.dropout(x, 0.5)`` in a ``forward`` takes ``training=True`` by default, so ``model.eval()`` does
not reach it: validation is random. The probe runs a private copy of the model in eval mode at the
first evaluation pass and records the dropouts that still drop, with the user's line. Twins: the
same model passing ``training=self.training``, one with an ``nn.Dropout`` layer, and Monte Carlo
dropout asked for on purpose (``training=True`` passed).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import found
from torch import nn

import modeldebug as md


class _Net(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.fc1, self.fc2, self.drop = nn.Linear(10, 32), nn.Linear(32, 2), nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        if self.how == "default":
            h = F.dropout(h, 0.5)
        elif self.how == "follows_mode":
            h = F.dropout(h, 0.5, training=self.training)
        elif self.how == "monte_carlo":
            h = F.dropout(h, 0.5, training=True)
        elif self.how == "alpha":
            h = F.alpha_dropout(F.selu(h), 0.1)  # its `training` defaults to False: off in eval
        else:
            h = self.drop(h)
        return self.fc2(h)


def _run(how: str, no_grad: bool = True):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = _Net(how)
    x, xv = torch.randn(256, 10), torch.randn(128, 10)
    y, yv = (x[:, 0] > 0).long(), (xv[:, 0] > 0).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(3):
            model.train()
            for i in range(0, 256, 64):
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad() if no_grad else torch.enable_grad():  # (tutorials often leave no_grad out)
                first = model(xv)
                assert how in ("default", "monte_carlo", "alpha") or torch.equal(first, model(xv))
    return s, yv


@pytest.mark.parametrize("no_grad", [True, False])
def test_a_functional_dropout_left_at_its_default_is_found_with_its_line(no_grad: bool) -> None:
    s, _ = _run("default", no_grad)
    f = found(s.report(), "train_mode_misuse")
    assert f is not None and f.severity == "high" and f.code == "LOP002"
    (call,) = f.evidence["calls"]
    assert call["file"] == __file__ and call["code"] == "h = F.dropout(h, 0.5)" and not call["explicit"]
    assert "training=self.training" in f.recommendations[0].implementation


@pytest.mark.parametrize("how", ["follows_mode", "module", "monte_carlo", "alpha"])
def test_dropout_that_follows_the_mode_or_is_asked_for_is_left_alone(how: str) -> None:
    s, _ = _run(how)
    assert found(s.report(), "train_mode_misuse") is None
    (ev,) = s.record.events("eval_dropout")
    assert [c["explicit"] for c in ev.data["calls"]] == ([True] if how == "monte_carlo" else [])


def test_the_probe_leaves_the_users_model_and_random_stream_alone() -> None:
    torch.manual_seed(0)
    model = _Net("default").eval()
    x = torch.randn(8, 10)
    torch.manual_seed(1)
    with torch.no_grad():
        plain = model(x)
    torch.manual_seed(1)
    with md.watch(model, db=":memory:"), torch.no_grad():
        watched = model(x)
    assert torch.equal(plain, watched) and F.dropout.__module__ == "torch.nn.functional"
