"""A graph network's adjacency, passed beside the node features: normalised, or scaling every layer up
(DAT001's graph check: capture/graphs.py records it, rules/graphs.py judges it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md


class GCN(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.lin1(adj @ x))
        return self.lin2(adj @ h)


def _graph(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A two-community graph with heavy-tailed degrees, node features and labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    weight = torch.rand(n, generator=g) ** 3 * 8 + 0.5  # some hubs
    p = 0.02 * weight[:, None] * weight[None, :] * torch.where(y[:, None] == y[None, :], 1.0, 0.2)
    a = (torch.rand(n, n, generator=g) < p.clamp(max=1)).float()
    a = torch.triu(a, 1)
    a = a + a.T
    x = torch.randn(n, 16, generator=g) + y[:, None].float() * 0.5
    return a, x, y


def _normalise(a: torch.Tensor, how: str) -> torch.Tensor:
    a_self = a + torch.eye(a.shape[0])
    deg = a_self.sum(1)
    if how == "symmetric":
        d = deg.pow(-0.5)
        return d[:, None] * a_self * d[None, :]
    if how == "random_walk":
        return a_self / deg[:, None]
    if how == "by_degree":  # the bug: rows multiplied by the degree
        return deg[:, None] * a_self
    return a_self  # "none": 0/1 entries


def _train(adj: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int = 40, batched: bool = False):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = GCN(x.shape[1], 32, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = torch.arange(x.shape[0]) < int(0.7 * x.shape[0])
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(steps):
            out = model(x[None], adj[None])[0] if batched else model(x, adj)
            loss = F.cross_entropy(out[train], y[train])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            model(x, adj)  # evaluation on the held-out nodes: the whole graph again
    return s.report()


def _dat001(report):  # type: ignore[no-untyped-def]
    return [f for f in report.findings if f.code == "DAT001"]


@pytest.mark.parametrize("layout", ["dense", "sparse", "batched"])
def test_an_adjacency_multiplied_by_the_degree_is_the_root_cause(layout: str) -> None:
    a, x, y = _graph()
    adj = _normalise(a, "by_degree")
    if layout == "sparse":
        adj = adj.to_sparse()
    report = _train(adj, x, y, batched=layout == "batched")
    (f,) = _dat001(report)
    assert f.severity == "high" and "degree" in f.title and f.location == "GCN"
    assert f.evidence["graph_adjacency"]["row_sum_degree_exponent"] > 1.5
    assert "pow(-0.5)" in f.recommendations[0].implementation
    assert report.findings[0] is f  # first: the loss at initialisation is its symptom, not a cause
    assert not [g for g in report.findings if g.kind == "poor_initialization"]


@pytest.mark.parametrize("how", ["symmetric", "random_walk"])
def test_a_normalised_adjacency_is_healthy(how: str) -> None:
    a, x, y = _graph()
    report = _train(_normalise(a, how), x, y)
    assert not _dat001(report)
    # the nodes of one graph mix through it by design, and a transductive split evaluates them all
    assert not [f for f in report.findings if f.kind in ("batch_mixing", "data_leakage")]


def test_a_0_1_adjacency_is_a_low_note_for_sum_aggregation() -> None:
    a, x, y = _graph(seed=1)
    dense = (a + torch.eye(a.shape[0]) + (torch.rand(a.shape, generator=torch.Generator().manual_seed(2)) < 0.05).float()).clamp(max=1)
    dense = torch.maximum(dense, dense.T)  # degree ~20: sums, not means, of the neighbours
    (f,) = _dat001(_train(dense, x, y, steps=20))
    assert "0/1 entries" in f.title and f.evidence["graph_adjacency"]["binary"]


def test_a_square_matrix_that_is_not_a_graph_is_not_judged() -> None:
    """An additive attention mask over the nodes (0 and -inf) is square too: not a propagation matrix."""

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.out = nn.Linear(16, 16), nn.Linear(16, 2)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            att = torch.softmax(self.q(x) @ x.T / 4 + mask, 1)
            return self.out(att @ x)

    a, x, y = _graph()
    mask = torch.where(a + torch.eye(a.shape[0]) > 0, 0.0, -1e4)
    torch.manual_seed(0)
    model = Masked()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(20):
            loss = F.cross_entropy(model(x, mask), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert not _dat001(s.report())


class SumGNN(nn.Module):
    """Message passing over an edge list with sum aggregation, a mean readout per graph (GIN-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(1, 32)
        self.mix = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
        self.out = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, graphs: int) -> torch.Tensor:
        h = self.inp(x)
        src, dst = edge_index
        for _ in range(2):
            h = F.relu(self.mix(h + torch.zeros_like(h).index_add_(0, dst, h[src])))
        counts = torch.zeros(graphs).index_add_(0, batch, torch.ones(len(batch))).unsqueeze(1)
        return self.out(torch.zeros(graphs, h.shape[1]).index_add_(0, batch, h) / counts)


def test_constant_node_features_beside_the_edges_are_a_low_note_not_a_repeated_sample() -> None:
    """Graphs without node features are fed a constant per node, the class in the structure: that is
    not a pipeline returning one sample (medium), and the input layer's small gradients are expected."""
    g = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(64):  # paths (class 0) and stars (class 1)
        n = int(torch.randint(6, 12, (1,), generator=g))
        star = i % 2
        edges = [(0, k) for k in range(1, n)] if star else [(k, k + 1) for k in range(n - 1)]
        e = torch.tensor(edges + [(b, a) for a, b in edges]).T
        graphs.append((n, e, star))
    torch.manual_seed(0)
    model = SumGNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for step in range(40):
            chunk = graphs[(step % 8) * 8:(step % 8 + 1) * 8]
            offsets = torch.tensor([0] + [n for n, _, _ in chunk]).cumsum(0)
            x = torch.ones(int(offsets[-1]), 1)
            edge_index = torch.cat([e + offsets[k] for k, (_, e, _) in enumerate(chunk)], 1)
            batch = torch.cat([torch.full((n,), k) for k, (n, _, _) in enumerate(chunk)])
            y = torch.tensor([c for _, _, c in chunk])
            loss = F.cross_entropy(model(x, edge_index, batch, len(chunk)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = s.report()
    assert [f.severity for f in report.findings if f.severity != "low"] == []
    (f,) = _dat001(report)
    assert f.evidence["other_tensors"] == 2 and "other input" in f.title


@pytest.mark.parametrize("cumulative", [True, False], ids=["running-total", "previous-graph-only"])
def test_a_graph_batch_collated_with_wrong_edge_offsets_mixes_graphs(cumulative: bool) -> None:
    """blind6's collate: each graph's edge_index shifted by the previous graph's node count, not the
    running total, wires later graphs into earlier ones."""
    g = torch.Generator().manual_seed(0)
    chunk = []
    for i in range(8):
        n = int(torch.randint(5, 9, (1,), generator=g))
        edges = [(k, k + 1) for k in range(n - 1)]
        chunk.append((n, torch.tensor(edges + [(b, a) for a, b in edges]).T, i % 2))
    offsets, total, prev = [], 0, 0
    for n, _, _ in chunk:
        offsets.append(total if cumulative else prev)
        total, prev = total + n, n
    x = torch.ones(total, 1)
    edge_index = torch.cat([e + off for off, (_, e, _) in zip(offsets, chunk)], 1)
    batch = torch.cat([torch.full((n,), k) for k, (n, _, _) in enumerate(chunk)])
    y = torch.tensor([c for _, _, c in chunk])
    torch.manual_seed(0)
    model = SumGNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(10):
            loss = F.cross_entropy(model(x, edge_index, batch, len(chunk)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    mix = [f for f in s.report().findings if f.kind == "batch_mixing"]
    if cumulative:
        assert not mix
    else:
        (f,) = mix
        assert f.severity == "high" and f.evidence["unit"] == "graph" and "running total" in f.recommendations[0].implementation
