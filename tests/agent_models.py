"""Faulty models for the agent's tests, each with the bug written the way people write it."""

from __future__ import annotations

import torch
from torch import nn

from modeldebug.testing import classification


def batch(n: int = 64, features: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    data = classification(features=features)
    return data.x[:n], data.y[:n]


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def dead_relu() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # every unit of the first ReLU is negative for every input
    return model


def double_softmax() -> nn.Sequential:
    return nn.Sequential(mlp(), nn.Softmax(dim=1))  # then fed to CrossEntropyLoss


class BatchMixing(nn.Module):
    """Flattens with the batch axis in the wrong place: `.t().reshape(batch, -1)` mixes samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.fc2(h.t().reshape(x.shape[0], -1))


class Detached(nn.Module):
    """The encoder's output is detached: the encoder never learns."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).detach())


def shape_mismatch() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(400, 3))


class InPlace(nn.Module):
    """Adds to sigmoid's output in place, which sigmoid's backward needs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.fc(x))
        h += 1.0
        return h


def sgd(lr: float):  # type: ignore[no-untyped-def]
    return lambda params: torch.optim.SGD(params, lr=lr)
