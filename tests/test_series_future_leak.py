"""DAT004 for a next-step forecaster: a float series trained to output, at every position, the next value
(the target is the input shifted by one). A convolution padded on both sides ('same') or a bidirectional
recurrence reads that next value; a left-padded convolution and a forward LSTM do not. A regression whose
target is not the shifted input is not probed."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md

T = 32


class _Conv(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.c1 = nn.Conv1d(1, 16, 3, padding=0 if causal else 1)
        self.c2 = nn.Conv1d(16, 1, 3, padding=0 if causal else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T)
        h = x.unsqueeze(1)
        h = torch.relu(self.c1(F.pad(h, (2, 0)) if self.causal else h))
        return self.c2(F.pad(h, (2, 0)) if self.causal else h).squeeze(1)


class _Rnn(nn.Module):
    def __init__(self, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, 16, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(32 if bidirectional else 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x.unsqueeze(-1))[0]).squeeze(-1)


def _run(model: nn.Module, shifted: bool = True):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    t = torch.arange(4000, dtype=torch.float32)
    s = torch.sin(t / 7) + 0.3 * torch.sin(t / 3.1) + 0.1 * torch.randn(4000)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    with md.watch(model, opt, db=":memory:") as session:
        for _ in range(30):
            starts = torch.randint(0, 4000 - T - 1, (32,), generator=g)
            x = torch.stack([s[i:i + T] for i in starts])
            y = torch.stack([s[i + 1:i + T + 1] for i in starts]) if shifted else x * 2.0
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return session


@pytest.mark.parametrize("model", [_Conv(causal=False), _Rnn(bidirectional=True)], ids=["same_padding", "bidirectional"])
def test_a_forecaster_that_reads_the_next_value_is_found(model: nn.Module) -> None:
    f = next((f for f in _run(model).report().findings if f.code == "DAT004"), None)
    assert f is not None and f.severity == "high" and "sees the values it must predict" in f.title
    assert f.evidence["series"] and f.evidence["first_future_seen"] == T // 2 + 1


@pytest.mark.parametrize("model", [_Conv(causal=True), _Rnn(bidirectional=False)], ids=["left_padded", "forward_gru"])
def test_a_causal_forecaster_is_left_alone(model: nn.Module) -> None:
    s = _run(model)
    (ev,) = s.record.events("future_leak_probe")
    assert ev.data["future_positions_seen"] == 0
    assert not [f for f in s.report().findings if f.code == "DAT004"]


def test_a_target_that_is_not_the_next_value_is_not_probed() -> None:
    s = _run(_Conv(causal=False), shifted=False)
    assert not s.record.events("future_leak_probe")
