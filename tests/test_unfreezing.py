"""Gradual unfreezing and replaced heads: the watched model re-read on sampled steps (capture/registry.py
`refresh`), and parameters whose optimizer stopped stepping while they still get gradients (OPT001)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md


class Net(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    for i in range(0, len(x), 32):
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("added", [False, True], ids=["unfrozen-not-in-optimizer", "param-group-added"])
def test_a_backbone_unfrozen_after_the_fine_tuning_optimizer_was_built(added: bool) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(640, 16), torch.randn(16, 5)
    model = Net(5)
    with md.watch(model, db=":memory:") as s:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # pretraining
        for _ in range(3):
            _epoch(model, opt, x, (x @ w).argmax(1))
        model.head = nn.Linear(64, 3)  # fine-tuning on another task: a new head, the backbone frozen first
        for p in model.backbone.parameters():
            p.requires_grad = False
        opt = torch.optim.Adam(model.head.parameters(), lr=1e-3)
        y = (x @ w[:, :3]).argmax(1)
        for epoch in range(16):
            if epoch == 2:
                for p in model.backbone.parameters():
                    p.requires_grad = True
                if added:  # the fix: the stepping optimizer gets them
                    opt.add_param_group({"params": list(model.backbone.parameters()), "lr": 1e-4})
            _epoch(model, opt, x, y)
    rec = s.record
    params = {e.name for e in rec.entities("param")}
    assert {"head.weight", "head#2.weight"} <= params  # the replaced head's numbers do not continue the old one's
    f = [f for f in s.report().findings if f.code == "OPT001"]
    if added:
        assert not f
    else:
        (f,) = f
        assert f.severity == "high" and "not been updated since step" in f.title
        assert f.location.startswith("backbone") and "add_param_group" in f.recommendations[0].implementation


def test_a_teacher_trained_first_keeps_its_last_gradients_without_being_stranded() -> None:
    """A teacher trained, then used under no_grad while a student trains: its .grad still holds its last
    step's gradients (nothing zeroes them), read the same at every later sampled step. Not new gradients
    that no optimizer applies."""
    torch.manual_seed(0)
    x, w = torch.randn(640, 16), torch.randn(16, 5)
    y = (x @ w).argmax(1)
    teacher, student = Net(5), nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5))
    with md.watch(db=":memory:") as s:
        t_opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
        for _ in range(3):
            _epoch(teacher, t_opt, x, y)
        s_opt = torch.optim.Adam(student.parameters(), lr=1e-3)
        for _ in range(10):
            for i in range(0, len(x), 32):
                with torch.no_grad():
                    soft = F.softmax(teacher(x[i:i + 32]) / 2, 1)
                loss = F.kl_div(F.log_softmax(student(x[i:i + 32]) / 2, 1), soft, reduction="batchmean")
                s_opt.zero_grad()
                loss.backward()
                s_opt.step()
    assert not [f for f in s.report().findings if f.code == "OPT001"]
