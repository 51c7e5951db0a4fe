"""Graph classification with a hand-written collate: each graph's edge_index is shifted by the running node total.

A small GIN-style message-passing network (sum aggregation, BatchNorm, mean readout) classifies synthetic
graphs of 10-24 nodes into three families: ring-like graphs with chords, two-community graphs and
preferential-attachment trees. Node features are constant, so the class lives in the structure.
Graphs are batched into one disconnected big graph by a custom collate function.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

torch.manual_seed(0)
random.seed(0)


def undirected(pairs, n):
    pairs = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
    src = [a for a, b in pairs] + [b for a, b in pairs]
    dst = [b for a, b in pairs] + [a for a, b in pairs]
    return torch.tensor([src, dst], dtype=torch.long).view(2, -1)


def ring(n):
    pairs = [(i, (i + 1) % n) for i in range(n)]
    pairs += [(random.randrange(n), random.randrange(n)) for _ in range(n // 4)]
    return pairs


def communities(n):
    half = n // 2
    pairs = []
    for lo, hi in ((0, half), (half, n)):
        pairs += [(a, b) for a in range(lo, hi) for b in range(a + 1, hi) if random.random() < 0.35]
    pairs.append((random.randrange(half), random.randrange(half, n)))
    return pairs


def tree(n):
    deg = [1]
    pairs = []
    for v in range(1, n):
        u = random.choices(range(v), weights=deg)[0]
        pairs.append((u, v))
        deg[u] += 1
        deg.append(1)
    pairs += [(random.randrange(n), random.randrange(n)) for _ in range(n // 6)]
    return pairs


def make_graphs(count):
    graphs = []
    for _ in range(count):
        label = random.randrange(3)
        n = random.randint(10, 24)
        pairs = (ring, communities, tree)[label](n)
        graphs.append((torch.ones(n, 1), undirected(pairs, n), label))
    return graphs


def collate(graphs):
    xs, edges, batch, ys = [], [], [], []
    offset = 0
    for k, (x, edge_index, y) in enumerate(graphs):
        xs.append(x)
        edges.append(edge_index + offset)
        batch.append(torch.full((len(x),), k, dtype=torch.long))
        ys.append(y)
        offset += len(x)
    return torch.cat(xs), torch.cat(edges, 1), torch.cat(batch), torch.tensor(ys)


class GIN(nn.Module):
    def __init__(self, hidden=64, layers=3):
        super().__init__()
        self.inp = nn.Linear(1, hidden)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
            for _ in range(layers))
        self.out = nn.Linear(hidden * layers, 3)

    def forward(self, x, edge_index, batch, num_graphs):
        h = self.inp(x)
        src, dst = edge_index
        readouts = []
        counts = torch.zeros(num_graphs).index_add_(0, batch, torch.ones(len(batch))).unsqueeze(1)
        for mlp in self.mlps:
            agg = torch.zeros_like(h).index_add_(0, dst, h[src])
            h = mlp(h + agg)
            readouts.append(torch.zeros(num_graphs, h.size(1)).index_add_(0, batch, h) / counts)
        return self.out(torch.cat(readouts, 1))


train_loader = DataLoader(make_graphs(1500), batch_size=32, shuffle=True, collate_fn=collate)
val_loader = DataLoader(make_graphs(400), batch_size=64, collate_fn=collate)
model = GIN()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(10):
    model.train()
    total, n = 0.0, 0
    for x, ei, b, y in train_loader:
        loss = F.cross_entropy(model(x, ei, b, len(y)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        n += len(y)
    model.eval()
    correct, vloss, m = 0, 0.0, 0
    with torch.no_grad():
        for x, ei, b, y in val_loader:
            logits = model(x, ei, b, len(y))
            vloss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            m += len(y)
    if epoch % 2 == 1:
        print(f"epoch {epoch}  train loss {total / n:.4f}  val loss {vloss / m:.4f}  val acc {correct / m:.3f}")
