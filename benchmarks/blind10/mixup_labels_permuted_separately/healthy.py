"""Wood-species texture CNN trained with mixup whose labels use the same permutation as the images.

Microscope cross-sections of eight wood species (24x24 grey patches: ring spacing, ray
orientation and pore density differ between species). Training uses mixup (alpha = 1): the
images are mixed with a randomly permuted copy of the batch and the loss is
lam * CE(out, y) + (1 - lam) * CE(out, y_b). Here y_b comes from a second randperm call, so the
second label belongs to a different image than the one mixed in.
"""
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

C, S = 8, 24


def make_patches(n, rng):
    y = rng.integers(C, size=n)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    freq = np.linspace(0.25, 0.9, C)           # ring spacing
    angle = np.linspace(0, math.pi, C, endpoint=False) * 0.5
    pores = np.linspace(0.02, 0.16, C)[::-1]   # pore density
    X = np.zeros((n, 1, S, S), dtype=np.float32)
    for i in range(n):
        k = y[i]
        a = angle[(k * 3) % C] + rng.normal(0, 0.12)
        f = freq[k] * rng.uniform(0.9, 1.1)
        u = xx * math.cos(a) + yy * math.sin(a)
        img = np.sin(f * u + rng.uniform(0, 6.28))
        img += 1.5 * (rng.random((S, S)) < pores[(k * 5) % C])
        img += rng.normal(0, 1.6, (S, S))
        X[i, 0] = img
    return torch.from_numpy(X), torch.from_numpy(y)


rng = np.random.default_rng(SEED)
Xtr, ytr = make_patches(2000, rng)
Xva, yva = make_patches(1000, rng)
mu, sd = Xtr.mean(), Xtr.std()
Xtr, Xva = (Xtr - mu) / sd, (Xva - mu) / sd

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    nn.Flatten(), nn.Linear(32, C))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
BATCH, EPOCHS, ALPHA = 64, 14, 1.0
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(Xtr))
    tot, n = 0.0, 0
    for i in range(0, len(Xtr), BATCH):
        idx = perm[i:i + BATCH]
        x, y = Xtr[idx], ytr[idx]
        lam = float(np.random.beta(ALPHA, ALPHA))
        perm_x = torch.randperm(len(idx))
        x = lam * x + (1 - lam) * x[perm_x]
        y_a, y_b = y, y[perm_x]
        out = model(x)
        loss = lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
        n += len(idx)
    model.eval()
    with torch.no_grad():
        out = model(Xva)
        val_loss = F.cross_entropy(out, yva).item()
        val_acc = (out.argmax(1) == yva).float().mean().item()
        tr_acc = (model(Xtr[:1000]).argmax(1) == ytr[:1000]).float().mean().item()
    print(f"epoch {epoch}: train mixup loss {tot / n:.3f}, clean train acc {tr_acc:.3f}, "
          f"val loss {val_loss:.3f}, val acc {val_acc:.3f}")
