"""A loss that starts high because the logits are scaled after the model (ArcFace's s with its margin) is
no poor initialisation, and its margin keeps the loss above the label entropy in a model that learns;
a model whose own last layer makes the logits large still is one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import found, serious, watched
from torch import nn


class ArcFace(nn.Module):
    """Additive angular margin head (s=30, m=0.5); it returns the loss, as such heads often do."""

    def __init__(self, d: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, d) * 0.1)

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        target_logit = torch.cos(torch.acos(cosine) + 0.5)
        logits = torch.where(F.one_hot(target, cosine.size(1)).bool(), target_logit, cosine) * 30.0
        return F.cross_entropy(logits, target)


def _data(n: int = 512, classes: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(classes, 16, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + 0.5 * torch.randn(n, 16, generator=g), y


def test_an_arcface_head_that_learns_is_neither_poorly_initialised_nor_stuck_at_chance() -> None:
    torch.manual_seed(0)
    x, y = _data()
    encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    head = ArcFace(3, 8)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)

    def loop() -> None:
        for i in range(200):
            idx = torch.arange(i * 64, i * 64 + 64) % len(x)
            opt.zero_grad()
            head(encoder(x[idx]), y[idx]).backward()
            opt.step()

    report = watched(encoder, loop)
    with torch.no_grad():  # it does learn: classify by the nearest class centre
        acc = (F.linear(F.normalize(encoder(x)), F.normalize(head.weight)).argmax(1) == y).float().mean()
    assert acc > 0.8
    f = found(report, "poor_initialization")
    assert f is not None and f.severity == "low" and "scale after the model" in f.title
    assert f.evidence["loss_input_peak"] >= 5 * f.evidence["largest_module_output"]
    assert not serious(report)


def test_logits_made_large_by_the_last_layer_are_still_a_poor_initialisation() -> None:
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    nn.init.normal_(model[2].weight, std=5.0)  # the output layer makes the logits ~30
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def loop() -> None:
        for i in range(40):
            idx = torch.arange(i * 64, i * 64 + 64) % len(x)
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()

    f = found(watched(model, loop), "poor_initialization")
    assert f is not None and f.severity == "high" and f.title.startswith("Poor initialisation")
