"""Tiny seeded models, synthetic data and a plain training loop, for our tests and yours.

Every builder is seeded, runs in well under a second on a CPU, and is a real PyTorch model;
the faulty ones carry the bug the way people write it.

```python
from modeldebug.testing import healthy_mlp, train
model, data = healthy_mlp()
with modeldebug.watch(model, optimizer=None, db=":memory:") as s:
    train(model, data, steps=60)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .llm.testing import FakeCall, ScriptedEngine, contrarian_analyst, echo_analyst, fake_lm
from .record import Record, RunWriter

__all__ = ["Data", "FakeCall", "ScriptedEngine", "TASKS", "contrarian_analyst", "echo_analyst", "fake_lm", "build_record", "classification", "healthy_cnn", "healthy_gru", "healthy_mlp",
           "healthy_regression", "healthy_transformer", "regression", "train"]


@dataclass
class Data:
    """A synthetic data set and the loss that fits it."""

    x: torch.Tensor
    y: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 + step)
        idx = torch.randint(0, len(self.x), (size,), generator=g)
        return self.x[idx], self.y[idx]


def classification(n: int = 512, features: int = 20, classes: int = 3, *, seed: int = 0) -> Data:
    """Classes from thresholds on the first features: learnable, not trivial."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.zeros(n, dtype=torch.long)
    for c in range(1, classes):
        y += (x[:, c - 1] > 0.3 * (c - 1)).long()
    return Data(x, y.clamp_max(classes - 1), nn.CrossEntropyLoss())


def regression(n: int = 512, features: int = 8, *, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, 1, generator=g)
    y = torch.tanh(x @ w) + 0.05 * torch.randn(n, 1, generator=g)
    return Data(x, y, nn.MSELoss())


def healthy_mlp(*, seed: int = 0) -> tuple[nn.Module, Data]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    return model, classification(seed=seed)


def healthy_regression(*, seed: int = 0) -> tuple[nn.Module, Data]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    return model, regression(seed=seed)


def healthy_cnn(*, seed: int = 0) -> tuple[nn.Module, Data]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(16, 2),
    )
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long()
    return model, Data(x, y, nn.CrossEntropyLoss())


class _GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 32, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def healthy_gru(*, seed: int = 0) -> tuple[nn.Module, Data]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 10, 4, generator=g)
    y = (x[:, :, 0].sum(1) > 0).long()
    return _GRUClassifier(), Data(x, y, nn.CrossEntropyLoss())


class _TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


def healthy_transformer(*, seed: int = 0) -> tuple[nn.Module, Data]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, 6, generator=g)
    y = x[:, :, :3].sum(1).argmax(1)
    return _TinyTransformer(), Data(x, y, nn.CrossEntropyLoss())


TASKS: dict[str, Callable[..., tuple[nn.Module, Data]]] = {
    "mlp": healthy_mlp, "regression": healthy_regression, "cnn": healthy_cnn,
    "gru": healthy_gru, "transformer": healthy_transformer,
}


def train(model: nn.Module, data: Data, *, steps: int = 60, batch: int = 64,
          optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-2,
          zero_grad: bool = True) -> list[float]:
    """A plain training loop; returns the loss of every step."""
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        x, y = data.batch(step, batch)
        if zero_grad:
            opt.zero_grad()
        loss = data.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def build_record(*, loss: list[float] | None = None, grad_norm: list[float] | None = None,
                 lr: float | None = None, params: dict[str, dict[str, list[float]]] | None = None,
                 modules: dict[str, tuple[str, dict[str, list[float]]]] | None = None,
                 sample_steps: list[int] | None = None) -> Record:
    """A run record written by hand into a real (in-memory) SQLite store, for testing rules.

    `params` maps a parameter name to its per-step statistics ({"grad_norm": [...]}); `modules`
    maps a module name to (type, {statistic: values on `sample_steps`}).
    """
    w = RunWriter(":memory:")
    n = len(loss or grad_norm or [])
    for step in range(n):
        w.add_step(step, loss=loss[step] if loss else None, lr=lr,
                   grad_norm=grad_norm[step] if grad_norm else None)
    for name, stats in (params or {}).items():
        module = name.rsplit(".", 1)[0] if "." in name else ""
        eid = w.entity("param", name, info={"shape": [4, 4], "module": module, "requires_grad": True})
        for stat, values in stats.items():
            for step, v in enumerate(values):
                w.add_stats(step, [(eid, stat, v)])
    for name, (mtype, stats) in (modules or {}).items():
        eid = w.entity("module", name, type=mtype, info={"leaf": True, "params": 0})
        steps = sample_steps or list(range(max(len(v) for v in stats.values())))
        for stat, values in stats.items():
            for step, v in zip(steps, values):
                w.add_stats(step, [(eid, stat, v)])
    w.set_meta(steps=n)
    w.flush()
    return Record(w.conn)
