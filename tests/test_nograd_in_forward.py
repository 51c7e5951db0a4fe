"""Layers run under ``torch.no_grad()`` inside ``forward()`` (OPT001): their parameters are in the
optimizer but never get a gradient, and the layers did run (they are not unused). Twins: the same
model without the block, and the encoder frozen on purpose (``requires_grad_(False)``, the optimizer
over the head). A parameter without any gradient is not the work of dead units (their gradient is
zero, not absent): ACT001 does not fold it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md
from modeldebug.rules.base import Finding
from modeldebug.rules.ranking import rank


class _Net(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
        if how == "frozen":
            self.encoder.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "nograd":
            with torch.no_grad():
                h = self.encoder(x)
        else:
            h = self.encoder(x)
        return self.head(h)


def _run(how: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = _Net(how)
    params = model.head.parameters() if how == "frozen" else model.parameters()
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(2048, 16)
    y = (x[:, :3].sum(1) > 0).long()
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(120):
            i = (step * 64) % 2048
            loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s


def test_layers_run_under_no_grad_in_forward_are_named_with_the_block() -> None:
    findings = _run("nograd").report().findings
    (f,) = [f for f in findings if f.code == "OPT001"]
    assert "torch.no_grad()" in f.title and f.location == "encoder.0"
    assert set(f.evidence["modules"]) == {"encoder.0", "encoder.2"}
    assert "defined but unused" not in f.description  # they ran
    assert "with torch.no_grad()" in f.recommendations[0].implementation


@pytest.mark.parametrize("how", ["plain", "frozen"])
def test_an_encoder_that_trains_or_is_frozen_on_purpose_is_left_alone(how: str) -> None:
    s = _run(how)
    assert not [f for f in s.report().findings if f.code == "OPT001"]
    assert not s.record.events("nograd_in_forward")


def test_a_parameter_without_any_gradient_is_not_folded_into_dead_units() -> None:
    dead = Finding("ACT001", "dead_activations", "activation", "medium", 0.6, "66% of head.1 dead", "...", "head.1", 2)
    none = Finding("OPT001", "params_not_updating", "optimizer", "medium", 0.9, "never received a gradient", "...",
                   "encoder.0", 0, evidence={"not_explained_by": ["dead_activations"]})
    zero = Finding("OPT001", "params_not_updating", "optimizer", "medium", 0.9, "exactly zero gradient", "...",
                   "encoder.0", 3)
    assert [f.code for f in rank([dead, none])] == ["OPT001", "ACT001"]  # both stand
    assert [f.code for f in rank([dead, zero])] == ["ACT001"]  # a zero gradient: the dead units' work


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad=True")  # (PyTorch's own hint of the bug)
def test_a_reentrant_checkpoint_on_an_input_without_grad_is_named_as_such() -> None:
    """torch.utils.checkpoint(use_reentrant=True) runs its block with autograd off: given an input that does
    not require grad (frozen embeddings), nothing in the block gets a gradient. Not a no_grad block."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    emb = nn.Embedding(50, 16).requires_grad_(False)
    block = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
    head = nn.Linear(16, 2)
    model = nn.ModuleDict({"emb": emb, "block": block, "head": head})
    opt = torch.optim.Adam([*block.parameters(), *head.parameters()], lr=1e-3)
    ids = torch.randint(0, 50, (640, 8))
    y = (ids[:, 0] % 2).long()
    with md.watch(model, opt, db=":memory:") as s:
        for i in range(0, 640, 32):
            h = checkpoint(block, emb(ids[i:i + 32]), use_reentrant=True).mean(1)
            loss = F.cross_entropy(head(h), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    (f,) = [f for f in s.report().findings if f.code == "OPT001"]
    assert "torch.utils.checkpoint" in f.title and "use_reentrant=False" in f.recommendations[0].implementation
