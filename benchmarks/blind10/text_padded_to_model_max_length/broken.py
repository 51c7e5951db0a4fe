"""Support-ticket router (small Transformer encoder) whose collate pads every batch to the model's maximum length of 128 tokens.

Customer-support tickets (token ids from a 2,000-word vocabulary, 6 to 60 tokens, median about
20) are routed to one of five teams. The collate function pads each batch to MAX_LEN = 128, the
longest input the model accepts, instead of to the longest ticket in the batch. The padding is
masked (src_key_padding_mask and a masked mean), so the results are the same as with dynamic
padding, but every step computes attention and feed-forward layers over several times as many
positions as there are tokens.
"""
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

V, K, MAX_LEN, PAD = 2000, 5, 128, 0
rng = np.random.default_rng(SEED)
team_words = [rng.choice(np.arange(1, V), 40, replace=False) for _ in range(K)]


def make_tickets(n):
    data = []
    for _ in range(n):
        k = rng.integers(K)
        length = int(np.clip(rng.lognormal(3.0, 0.45), 6, 60))
        toks = rng.integers(1, V, length)
        n_kw = max(2, length // 3)
        pos = rng.choice(length, n_kw, replace=False)
        toks[pos] = rng.choice(team_words[k], n_kw)
        data.append((toks, k))
    return data


def collate(batch):
    length = MAX_LEN
    x = torch.full((len(batch), length), PAD, dtype=torch.long)
    for i, (toks, _) in enumerate(batch):
        x[i, :len(toks)] = torch.from_numpy(toks)
    y = torch.tensor([k for _, k in batch])
    return x, y


class Router(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.emb = nn.Embedding(V, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.out = nn.Linear(d, K)

    def forward(self, x):
        pad = x == PAD
        h = self.emb(x) + self.pos(torch.arange(x.shape[1]))
        h = self.enc(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(2).float()
        return self.out((h * keep).sum(1) / keep.sum(1))


train = make_tickets(2000)
val = make_tickets(800)
lengths = [len(t) for t, _ in train]
print(f"ticket length: median {int(np.median(lengths))}, max {max(lengths)} tokens; padded length {MAX_LEN}")
train_loader = DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate)
val_loader = DataLoader(val, batch_size=128, shuffle=False, collate_fn=collate)
model = Router()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
for epoch in range(3):
    model.train()
    t0 = time.perf_counter()
    tot, n = 0.0, 0
    for x, y in train_loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        n += len(y)
    dt = time.perf_counter() - t0
    model.eval()
    vc, vn = 0, 0
    with torch.no_grad():
        for x, y in val_loader:
            vc += (model(x).argmax(1) == y).sum().item()
            vn += len(y)
    print(f"epoch {epoch}: train loss {tot / n:.3f}, val acc {vc / vn:.3f}, epoch {dt:.1f} s, "
          f"{1000 * dt / len(train_loader):.1f} ms/step, batch shape {tuple(x.shape)}")
