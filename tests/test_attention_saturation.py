"""ACT002 on attention written by hand: softmax weights that are one-hot from the first step (the logits
scaled by sqrt(d) where they should be divided by it), and the attention that must not be flagged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import found, watched
from torch import nn


class Attention(nn.Module):
    """A pre-norm self-attention block of heads of 64, as a ViT writes it."""

    def __init__(self, d: int = 128, heads: int = 2, scale: str = "divide", causal: bool = False) -> None:
        super().__init__()
        self.norm, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.heads, self.scale, self.causal = heads, scale, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in self.qkv(self.norm(x)).chunk(3, dim=-1))
        hd = q.shape[-1]
        factor = hd ** -0.5 if self.scale == "divide" else hd ** 0.5  # "multiply": the inverse scale
        scores = (q @ k.transpose(-2, -1)) * factor
        if self.causal:
            scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        attn = F.softmax(scores, dim=-1) if self.causal else scores.softmax(dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, t, d))


class Classifier(nn.Module):
    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.embed = nn.Linear(8, 128)
        self.blocks = nn.ModuleList([Attention(**kw) for _ in range(2)])
        self.head = nn.Linear(128, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h.mean(1))


def _train(**kw):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = Classifier(**kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 12, 8)
    y = (x[:, :, 0].sum(1) > 0).long() + (x[:, :, 1].sum(1) > 2).long()

    def loop() -> None:
        for _ in range(8):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return watched(model, loop)


def test_attention_logits_multiplied_by_the_scale_are_one_hot_from_the_first_step() -> None:
    f = found(_train(scale="multiply"), "saturated_activations")
    assert f is not None and f.code == "ACT002" and f.title.startswith("Attention is one-hot from the first step")
    assert f.evidence["softmaxes"] == 2 and f.evidence["saturated"] == 2 and f.evidence["shape"] == [64, 2, 12, 12]
    assert f.evidence["median_max_prob"] > 0.99 and f.step == 0
    assert "head_dim ** -0.5" in f.recommendations[0].implementation


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_scaled_by_one_over_sqrt_d_is_not_flagged(causal: bool) -> None:
    """The healthy twin, and a causal mask, whose first query rows have one or a few keys to choose from."""
    assert found(_train(scale="divide", causal=causal), "saturated_activations") is None
