"""A frozen part of a model (a pretrained encoder with `requires_grad = False`): its BatchNorm kept in
eval mode on purpose is not training in eval mode (LOP002) nor a validation pass that leaks memory
(MEM001); left in train mode, it normalises with each small batch and overwrites its statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug as md

from helpers import found, serious


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32),
                                 nn.BatchNorm1d(32), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Classifier(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@pytest.mark.parametrize("encoder_eval", [True, False], ids=["frozen-in-eval-mode", "frozen-in-train-mode"])
def test_a_frozen_encoders_batchnorm_mode(encoder_eval: bool) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=g) * 2 + 1
    y = (x[:, 0] > 1).long() + (x[:, 1] > 1).long()
    model = _Classifier(_Encoder())
    pre_head = nn.Linear(32, 4)

    def loop() -> None:
        pre_opt = torch.optim.Adam([*model.encoder.parameters(), *pre_head.parameters()], lr=3e-3)
        for i in range(60):  # pretraining the encoder on another task
            xb = x[i * 32:(i + 1) * 32]
            loss = nn.functional.mse_loss(pre_head(model.encoder(xb)), xb[:, :4])
            pre_opt.zero_grad()
            loss.backward()
            pre_opt.step()
        for p in model.encoder.parameters():
            p.requires_grad = False
        opt = torch.optim.Adam(model.head.parameters(), lr=1e-2)
        for i in range(240):  # fine-tuning the head on batches of 4
            model.train()
            if encoder_eval:
                model.encoder.eval()
            xb, yb = x[(i * 4) % 2048:(i * 4) % 2048 + 4], y[(i * 4) % 2048:(i * 4) % 2048 + 4]
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    with md.watch(db=":memory:") as session:  # every model, as `modeldebug run` watches: the encoder is one
        loop()
    report = session.report()
    if encoder_eval:
        assert serious(report) == []
        # the frozen encoder's eval-mode calls are part of the classifier's training pass, not evaluations
        assert float(np.nansum(session.record.column("fwd_eval_mode").values)) == 0
        return
    f = found(report, "train_mode_misuse")
    assert f is not None and f.severity == "medium" and "frozen BatchNorm" in f.title
    assert {n.rsplit("net.", 1)[-1] for n in f.evidence["layers"]} == {"1", "4"}
    assert ".eval()" in f.recommendations[0].implementation


def test_an_ema_teacher_in_train_mode_is_not_a_frozen_part() -> None:
    """A mean teacher (DINO, BYOL): no optimizer holds it, an exponential moving average of the student
    moves it every step, and it runs in train mode with autograd on. Its weights move, so its
    BatchNorm is not a frozen part's."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 16, generator=g)
    student = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 8))
    teacher = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 8))
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    with md.watch(db=":memory:") as session:
        for i in range(150):
            xb = x[(i * 32) % 1024:(i * 32) % 1024 + 32]
            target = teacher(xb + 0.1 * torch.randn_like(xb)).detach()
            loss = nn.functional.mse_loss(student(xb), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for t, s in zip(teacher.parameters(), student.parameters()):
                    t.mul_(0.99).add_(s, alpha=0.01)
    f = found(session.report(), "train_mode_misuse")
    assert f is None or "frozen BatchNorm" not in f.title


def test_a_batchnorm_behind_dead_units_is_not_a_frozen_part() -> None:
    """Review (agent): a BatchNorm whose bias of -10 kills the ReLU after it gets a gradient of exactly zero and
    stands still, while the rest trains. Nothing is frozen (it requires a gradient and its optimizer holds it):
    the dead units are the finding, not "a frozen BatchNorm still run in train mode"."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 3))
    nn.init.constant_(model[1].bias, -10.0)
    x, y = torch.randn(512, 3, 8, 8), torch.randint(0, 3, (512,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(120):
            xb, yb = x[(i * 32) % 512:(i * 32) % 512 + 32], y[(i * 32) % 512:(i * 32) % 512 + 32]
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = session.report()
    f = found(report, "train_mode_misuse")
    assert f is None or "frozen BatchNorm" not in f.title, f.title
    assert found(report, "dead_activations") is not None
