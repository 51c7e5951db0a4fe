"""Seismic event detector whose collate_fn builds each batch with torch.tensor(list of numpy arrays).

Three-component seismograms (3 x 400 samples, 100 Hz) from a local network: windows that contain
a P and S arrival of a small earthquake against noise-only windows. The Dataset returns numpy
arrays; the custom collate_fn stacks a batch with torch.tensor([w for w, _ in batch]).
Building a tensor from a Python list of ndarrays goes element by element (PyTorch warns that it
is "extremely slow"), so the data loading dominates each step. Training results are unaffected.
"""
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

L = 400
rng = np.random.default_rng(SEED)


def make_windows(n):
    X = rng.normal(0, 1, (n, 3, L)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.int64)
    t = np.arange(L)
    for i in np.where(y == 1)[0]:
        p = rng.integers(60, 220)
        s = p + rng.integers(40, 120)
        amp = rng.uniform(0.6, 1.5)
        f = rng.uniform(0.15, 0.3)
        env_p = np.exp(-np.clip(t - p, 0, None) / 25) * (t >= p)
        env_s = np.exp(-np.clip(t - s, 0, None) / 40) * (t >= s)
        X[i, 0] += amp * env_p * np.sin(f * t)                # P: vertical
        X[i, 1:] += 1.6 * amp * env_s * np.sin(0.6 * f * t)   # S: horizontals
    return X, y


class Waveforms(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        w = self.X[i] / (np.abs(self.X[i]).max() + 1e-6)
        return w, self.y[i]


def collate(batch):
    x = torch.tensor([w for w, _ in batch])
    y = torch.tensor([lab for _, lab in batch])
    return x, y


Xtr, ytr = make_windows(4000)
Xva, yva = make_windows(1000)
train_loader = DataLoader(Waveforms(Xtr, ytr), batch_size=64, shuffle=True, collate_fn=collate)
val_loader = DataLoader(Waveforms(Xva, yva), batch_size=256, shuffle=False, collate_fn=collate)

model = nn.Sequential(
    nn.Conv1d(3, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4),
    nn.Conv1d(16, 32, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4),
    nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool1d(1),
    nn.Flatten(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
EPOCHS = 8
for epoch in range(EPOCHS):
    model.train()
    t0 = time.perf_counter()
    wait = 0.0
    tot, n = 0.0, 0
    tw = time.perf_counter()
    for x, y in train_loader:
        wait += time.perf_counter() - tw
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        n += len(y)
        tw = time.perf_counter()
    ep_time = time.perf_counter() - t0
    model.eval()
    vc, vn = 0, 0
    with torch.no_grad():
        for x, y in val_loader:
            vc += (model(x).argmax(1) == y).sum().item()
            vn += len(y)
    steps = len(train_loader)
    print(f"epoch {epoch}: train loss {tot / n:.3f}, val acc {vc / vn:.3f}, epoch {ep_time:.2f} s, "
          f"{1000 * ep_time / steps:.1f} ms/step of which {1000 * wait / steps:.1f} ms waiting for data")
