"""Watching must not change the run: same losses bit for bit, same hook calls, same flags.

Each model here has something the one-off batch-mixing probe used to disturb when it called the
user's own model: state kept on the module, a forward hook, a ``train()`` override with side
effects, the random stream (dropout). Each is trained plainly and under every level, and the two
runs must agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.config import LEVELS

STEPS = 5
BATCH = 6


class StatefulGRU(nn.Module):
    """Carries its hidden state from one call to the next (truncated back-propagation through time)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 8, batch_first=True)
        self.head = nn.Linear(8, 2)
        self.h: torch.Tensor | None = None
        self.last_logits: torch.Tensor | None = None  # a non-leaf tensor kept on the module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(x, self.h)
        self.h = h.detach()
        logits = self.head(out[:, -1])
        self.last_logits = logits
        return logits


class WrappedForward(StatefulGRU):
    """``forward`` replaced on the instance by a wrapper of the bound method (as accelerate's
    mixed precision does): a copy of the model would still call the original's forward."""

    def __init__(self) -> None:
        super().__init__()
        inner = self.forward
        self.forward = lambda *args, **kwargs: inner(*args, **kwargs)  # type: ignore[method-assign]


class Hooked(nn.Module):
    """Counts its own calls with a forward hook on a submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.calls = 0
        self.body.register_forward_hook(self._count)

    def _count(self, module: nn.Module, args: Any, output: Any) -> None:
        self.calls += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FreezesInTrain(nn.Module):
    """Freezes its stem whenever ``train()``/``eval()`` is called (as detection backbones do)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(8, 2))
        self.train_calls = 0

    def train(self, mode: bool = True) -> FreezesInTrain:
        super().train(mode)
        self.train_calls += 1
        self.stem.eval()
        for p in self.stem.parameters():
            p.requires_grad_(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


class Dropped(nn.Module):
    """Dropout (the random stream) and BatchNorm (running statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _batch(model: nn.Module) -> torch.Tensor:
    # Drawn from the global random stream, after the model's forward: a probe that consumed
    # random numbers would shift every later batch.
    if isinstance(model, StatefulGRU):  # and WrappedForward
        return torch.randn(BATCH, 5, 3)
    return torch.randn(BATCH, 4)


def _train(build: Callable[[], nn.Module], level: str | None) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    global_calls = [0]

    def global_hook(module: nn.Module, args: Any, output: Any) -> None:
        global_calls[0] += 1

    handle = nn.modules.module.register_module_forward_hook(global_hook)
    losses: list[float] = []
    session = md.watch(model, optimizer=opt, level=level, db=":memory:") if level else None
    try:
        if session is not None:
            session.__enter__()
        for _ in range(STEPS):
            x = _batch(model)
            y = torch.randint(0, 2, (BATCH,))
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        if session is not None:
            session.__exit__(None, None, None)
        handle.remove()
    return {
        "losses": losses,
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "global_hook_calls": global_calls[0],
        "own": {k: getattr(model, k) for k in ("calls", "train_calls") if hasattr(model, k)},
        "probe": [e.data for e in session.record.events("batch_mixing_probe")] if session else None,
        "errors": [e.data for e in session.record.events("internal_error")] if session else None,
    }


MODELS = {"stateful_gru": StatefulGRU, "wrapped_forward": WrappedForward, "forward_hook": Hooked, "train_override": FreezesInTrain, "dropout": Dropped}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", list(MODELS))
def test_watching_leaves_the_run_bit_identical(name: str, level: str) -> None:
    plain = _train(MODELS[name], None)
    watched = _train(MODELS[name], level)
    assert watched["errors"] == []
    # The probe really ran (on its private copy), so the comparison below means something.
    assert len(watched["probe"]) == 1 and "skipped" not in watched["probe"][0], watched["probe"]
    assert watched["losses"] == plain["losses"]  # exact float equality, step by step
    for key in ("requires_grad", "training", "global_hook_calls", "own"):
        assert watched[key] == plain[key], key
    assert plain["state"].keys() == watched["state"].keys()
    for k, v in plain["state"].items():
        assert torch.equal(v, watched["state"][k]), k


def test_probe_reports_a_model_that_cannot_be_copied() -> None:
    class Uncopyable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def __deepcopy__(self, memo: dict[int, Any]) -> Uncopyable:
            raise TypeError("this model holds a live connection")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    torch.manual_seed(0)
    model = Uncopyable()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(2):
            opt.zero_grad()
            nn.functional.cross_entropy(model(torch.randn(6, 4)), torch.randint(0, 2, (6,))).backward()
            opt.step()
    (probe,) = [e.data for e in s.record.events("batch_mixing_probe")]
    assert "could not be copied" in probe["skipped"]
    assert "live connection" in probe["skipped"]
