"""MIX001's position reading: a sample's output that depends on its row in the batch (a positional
encoding written for time-first input, added to a batch-first one), with its healthy twins."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modeldebug.capture.probes import batch_mixing
from modeldebug.rules import data  # noqa: F401  (importing registers the rules)

from test_rules import watched


class _Sinusoid(nn.Module):
    """The PyTorch tutorial's encoding: a (max_len, 1, d) buffer; `batch_axis_bug` slices it by x.size(0)."""

    def __init__(self, d: int, batch_axis_bug: bool, max_len: int = 256) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe)
        self.bug = batch_axis_bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, seq, d]
        if self.bug:
            return x + self.pe[: x.size(0)]  # [batch, 1, d]: row b gets position b on every token
        return x + self.pe[: x.size(1)].transpose(0, 1)


class _Sessions(nn.Module):
    """Token ids [batch, seq] -> embedding -> encoding -> a batch-first encoder layer -> mean -> 2 classes."""

    def __init__(self, batch_axis_bug: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.emb = nn.Embedding(13, 16)
        self.pos = _Sinusoid(16, batch_axis_bug)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.pos(self.emb(ids))).mean(1))


class _Features(nn.Module):
    """Float features [batch, seq, 4] -> linear -> encoding -> per-position MLP -> mean."""

    def __init__(self, batch_axis_bug: bool) -> None:
        super().__init__()
        self.inp, self.pos, self.head = nn.Linear(4, 16), _Sinusoid(16, batch_axis_bug), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.pos(self.inp(x))).mean(1))


class _NoisyInEval(nn.Module):
    """Adds fresh noise in eval mode too (Monte-Carlo style): two runs differ, so nothing can be compared."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(1) + 0.1 * torch.randn(x.shape[0], 4))


@pytest.mark.parametrize("bug", [True, False])
def test_the_probe_reads_an_encoding_indexed_by_the_batch_row(bug: bool) -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 13, (24, 10))
    result = batch_mixing(_Sessions(bug), (ids,))
    assert result is not None and result["mixed_samples"] == 0  # the gradient reading alone sees nothing
    moved = result.get("position_dependent")
    if bug:
        assert moved is not None and moved["rows_changed"] >= 20 and moved["max_relative_change"] > 0.01
    else:
        assert moved is None

    x = torch.randn(24, 10, 4)
    floats = batch_mixing(_Features(bug), (x,))
    assert floats is not None and (floats.get("position_dependent") is not None) == bug


def test_a_model_that_is_random_in_eval_mode_is_not_compared() -> None:
    torch.manual_seed(0)
    result = batch_mixing(_NoisyInEval(), (torch.randn(16, 5, 4),))
    assert result is not None and result["mixed_samples"] == 0 and "position_dependent" not in result


def test_an_argument_beside_the_batch_is_reordered_with_it() -> None:
    """A per-sample weight passed as a second argument moves with its sample: no position dependence."""

    class Weighted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * w.unsqueeze(1)

    torch.manual_seed(0)
    result = batch_mixing(Weighted(), (torch.randn(16, 4), torch.rand(16)))
    assert result is not None and "position_dependent" not in result


def _train(model: nn.Module, steps: int = 6) -> None:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 13, (32 * steps, 10), generator=g)
    y = (ids[:, :5] == 3).any(1).long()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        i = slice(32 * step, 32 * step + 32)
        loss = F.cross_entropy(model(ids[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("bug", [True, False])
def test_the_watch_reports_an_encoding_indexed_by_the_batch(bug: bool) -> None:
    torch.manual_seed(0)
    model = _Sessions(bug, dropout=0.1)  # (dropout in training: the probe runs the copy in eval mode)
    report = watched(model, lambda: _train(model))
    f = next((f for f in report.findings if f.kind == "batch_mixing"), None)
    if not bug:
        assert f is None
        return
    assert f is not None and f.severity == "high" and "position in the batch" in f.title
    assert any("x.size(1)" in (r.implementation or "") for r in f.recommendations)


def test_two_encoders_scoring_every_pair_are_not_read_as_position_dependent() -> None:
    """A CLIP-style model returns a [B, B] matrix of every image against every text: reversing the batch
    reverses its rows and its columns, both put back before comparing."""

    class Pairs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 8), nn.Linear(5, 8)

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.a(x), dim=-1) @ F.normalize(self.b(t), dim=-1).T

    torch.manual_seed(0)
    result = batch_mixing(Pairs(), (torch.randn(12, 6), torch.randn(12, 5)))
    assert result is not None and "position_dependent" not in result


def test_a_sequence_as_long_as_the_batch_is_not_reordered() -> None:
    """With T == B a [T, T] mask (or positions) has the batch's size on axis 0: which axis is the batch
    cannot be told, so the position reading stands down."""
    torch.manual_seed(0)
    result = batch_mixing(_Features(True), (torch.randn(10, 10, 4),))
    assert result is not None and "position_dependent" not in result


def test_an_output_axis_as_long_as_the_batch_that_is_not_the_batch_is_left_in_place() -> None:
    """A language model over a vocabulary of 16 fed a batch of 16: its [B, T, V] logits have the batch's size
    on the vocabulary axis too, which the reversed batch does not reverse."""

    class Lm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.pos, self.head = nn.Embedding(16, 8), nn.Embedding(12, 8), nn.Linear(8, 16)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(torch.tanh(self.emb(ids) + self.pos(torch.arange(ids.shape[1]))))

    torch.manual_seed(0)
    result = batch_mixing(Lm(), (torch.randint(0, 16, (16, 12)),))
    assert result is not None and "position_dependent" not in result
