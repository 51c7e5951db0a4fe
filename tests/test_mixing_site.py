"""Where the batch-mixing probe says the samples mix: a module's own forward, or the code between two."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modeldebug.capture.probes import batch_mixing


class _ViewBetween(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.fc2(h.t().reshape(h.shape[0], -1))  # the bug: rows become other samples' columns


class _Recurrent(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.inp, self.rnn, self.head = nn.Linear(3, 8), nn.GRU(8, 8, batch_first=batch_first), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, time, features]
        out, _ = self.rnn(self.inp(x))
        return self.head(out[:, -1])


class _Nested(nn.Module):
    """The mixing sits in a block's forward, between two of its layers, inside a Sequential."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return self.b(torch.roll(self.a(h), 1, dims=0))  # each row takes the previous sample's

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), self.Block(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.parametrize("model,shape,site", [
    (_ViewBetween(), (8, 6), {"module": "_ViewBetween", "inside": False, "after": "fc1", "before": "fc2"}),
    (_Recurrent(batch_first=False), (8, 5, 3), {"module": "rnn", "module_type": "GRU", "inside": True}),
    (_Nested(), (8, 6), {"module": "body.1", "module_type": "Block", "after": "body.1.a", "before": "body.1.b"}),
])
def test_the_site_names_where_the_samples_meet(model: nn.Module, shape: tuple[int, ...],
                                               site: dict[str, object]) -> None:
    torch.manual_seed(0)
    result = batch_mixing(model, (torch.randn(*shape),))
    assert result is not None and result["mixed_samples"] > 0
    assert site.items() <= result["site"].items(), result["site"]


def test_a_model_that_keeps_samples_apart_has_no_site_and_keeps_no_hooks() -> None:
    torch.manual_seed(0)
    model = _Recurrent(batch_first=True)
    result = batch_mixing(model, (torch.randn(8, 5, 3),))
    assert result is not None and result["mixed_samples"] == 0 and "site" not in result
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())  # the user's model
