"""Weights kept in bfloat16 whose updates are below the format's resolution (OPT001's fifth path).

``model.to(torch.bfloat16)`` stores the weights (and Adam's state) in bfloat16, whose neighbouring
values are 2^-8..2^-7 of a value apart: an Adam step of lr=1e-4 on weights of ~0.2 is 5e-4 of them,
below half that spacing, so it is rounded away. Twins: the same model in float32 under autocast
(the fix), and the same bfloat16 weights at a rate whose steps clear the spacing.
"""

from __future__ import annotations

import pytest
import torch
from helpers import found
from torch import nn

import modeldebug as md


def _run(weights: torch.dtype, lr: float):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = x[:, :4].sum(1, keepdim=True)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1)).to(weights)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(120):
            i = (step * 64) % 512
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nn.functional.mse_loss(model(x[i:i + 64].to(weights)).float(), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s


def test_bfloat16_weights_whose_steps_round_away_are_found() -> None:
    s = _run(torch.bfloat16, 1e-4)
    f = next((f for f in s.report().findings if f.evidence.get("problem") == "updates below the weights' precision"), None)
    assert f is not None and f.kind == "params_not_updating" and f.severity == "high"
    assert f.evidence["dtypes"] == ["bfloat16"] and "autocast" in f.recommendations[0].implementation
    # the bias whose every step rounded away is part of it, not a separate "frozen group"
    assert [g.code for g in s.report().findings].count("OPT001") == 1 and len(f.evidence["params"]) == 4


@pytest.mark.parametrize(("weights", "lr"), [(torch.float32, 1e-4), (torch.bfloat16, 1e-2)],
                         ids=["float32-weights-under-autocast", "bfloat16-steps-that-clear-the-spacing"])
def test_weights_whose_steps_survive_are_left_alone(weights: torch.dtype, lr: float) -> None:
    s = _run(weights, lr)
    assert not [f for f in s.report().findings if f.evidence.get("problem") == "updates below the weights' precision"]
    assert found(s.report(), "params_not_updating") is None


def test_a_bfloat16_embedding_whose_batch_rows_move_is_left_alone() -> None:
    """(review) A step moves only the rows of the batch's ids: the ratio over the whole table is
    small however well those rows move."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20000, 64), nn.Flatten(), nn.Linear(256, 2)).to(torch.bfloat16)
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 25.0}, {"params": model[2].parameters(), "lr": 0.05}])
    ids = torch.randint(0, 20000, (256, 4))
    y = ids[:, 0] % 2
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(2):
            for i in range(0, 256, 32):
                loss = nn.functional.cross_entropy(model(ids[i:i + 32]).float(), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
    assert not [f for f in s.report().findings if f.evidence.get("problem") == "updates below the weights' precision"]
