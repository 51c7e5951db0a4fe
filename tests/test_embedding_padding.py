"""`nn.Embedding(padding_idx=0)` on ids where 0 is a real id (blind7's knowledge-graph relation 0, a table's
category 0): row 0 gets no gradient and never learns, for samples that are not padding (OPT001). Twins: no
padding_idx, a padded sequence (what padding_idx is for), and single ids that never use the padding index."""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious
from torch import nn

import modeldebug as md


class _CategoryModel(nn.Module):
    """A regressor over one categorical id and a few numbers, as in a table."""

    def __init__(self, padding_idx: int | None) -> None:
        super().__init__()
        self.category = nn.Embedding(6, 8, padding_idx=padding_idx)
        self.head = nn.Sequential(nn.Linear(8 + 4, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.category(ids), x], 1))


def _fit(padding_idx: int | None, ids_from: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(ids_from, 6, (1024,), generator=g)
    x = torch.randn(1024, 4, generator=g)
    y = (torch.linspace(-2, 2, 6)[ids] + x[:, 0]).unsqueeze(1)
    model = _CategoryModel(padding_idx)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(80):
            j = (i * 64) % 1024
            loss = nn.functional.mse_loss(model(ids[j:j + 64], x[j:j + 64]), y[j:j + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return session.report()


@pytest.mark.parametrize("padding_idx", [0, None])
def test_padding_idx_on_a_real_category_is_a_row_that_never_trains(padding_idx: int | None) -> None:
    report = _fit(padding_idx)
    f = found(report, "params_not_updating")
    if padding_idx is None:
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and f.code == "OPT001" and f.severity == "medium" and f.location == "category"
    assert f.evidence["padding_idx"] == 0 and 0.1 < f.evidence["padding_share"] < 0.25
    assert "no padding_idx" in f.recommendations[0].implementation


def test_single_ids_that_never_use_the_padding_index_are_left_alone() -> None:
    """Ids 1-5 only, 0 kept for padding as the docs suggest: nothing is lost."""
    report = _fit(0, ids_from=1)
    assert found(report, "params_not_updating") is None
    assert report.record.events("embedding_padding")  # measured, and judged fine


def test_a_padded_sequence_is_what_padding_idx_is_for() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 12, (512,), generator=g)
    ids = torch.randint(1, 20, (512, 12), generator=g)
    ids[torch.arange(12)[None, :] >= lengths[:, None]] = 0  # padded at the end
    y = (ids == 7).any(1).long()
    emb, head = nn.Embedding(20, 16, padding_idx=0), nn.Linear(16, 2)
    model = nn.ModuleDict({"emb": emb, "head": head})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return head(emb(batch).sum(1))

    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(60):
            j = (i * 64) % 512
            loss = nn.functional.cross_entropy(forward(ids[j:j + 64]), y[j:j + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = session.report()
    probes = report.record.events("embedding_padding")
    assert probes and not any(e.data["one_id_per_sample"] for e in probes)  # measured: a [B, T] sequence
    f = found(report, "params_not_updating")
    assert f is None or "padding_idx" not in f.title
