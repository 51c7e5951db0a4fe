"""Pollen-grain CNN whose BatchNorm layers track running statistics, so evaluation does not depend on the batch.

Light-microscope images of pollen grains of six plant taxa (28x28 grey): taxa differ in grain
size, brightness, wall thickness and the number of apertures. The CNN uses
BatchNorm2d(track_running_stats=False) (copied from an image-to-image model). In eval() mode such
a layer still normalises with the statistics of the current batch. The validation folder is
read in class order (one taxon after another) with shuffle=False, so most validation batches
hold a single taxon, and the per-batch normalisation removes exactly the size and brightness
differences the classifier relies on. Training batches are shuffled and are not affected.
"""
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

C, S = 6, 28
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) - (S - 1) / 2


def make_grains(n_per_class):
    X, y = [], []
    radius = [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    bright = [0.5, 0.9, 0.6, 1.0, 0.7, 0.8]
    apert = [0, 3, 0, 3, 4, 4]
    for k in range(C):
        for _ in range(n_per_class):
            r = radius[k] * rng.uniform(0.9, 1.1)
            cx, cy = rng.normal(0, 1.5, 2)
            rr = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
            img = bright[k] * (rr < r) + 0.6 * np.exp(-((rr - r) ** 2) / 1.5)
            th = np.arctan2(yy - cy, xx - cx)
            if apert[k]:
                ph = rng.uniform(0, 2 * math.pi)
                img -= 0.5 * (np.cos(apert[k] * th + ph) > 0.9) * (np.abs(rr - r) < 2)
            img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 0.25, (S, S))
            X.append(img[None])
            y.append(k)
    return torch.tensor(np.array(X, dtype=np.float32)), torch.tensor(y)


Xtr, ytr = make_grains(500)
Xva, yva = make_grains(150)  # stored class by class, as read from one folder per taxon
train_loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=64, shuffle=True)
val_loader = DataLoader(TensorDataset(Xva, yva), batch_size=64, shuffle=False)


def bn(c):
    return nn.BatchNorm2d(c)


model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), bn(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), bn(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 32, 3, padding=1), bn(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    nn.Flatten(), nn.Linear(32, C))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
EPOCHS = 8
for epoch in range(EPOCHS):
    model.train()
    tot, n, correct = 0.0, 0, 0
    for x, y in train_loader:
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    model.eval()
    vl, vc, vn = 0.0, 0, 0
    with torch.no_grad():
        for x, y in val_loader:
            out = model(x)
            vl += F.cross_entropy(out, y, reduction="sum").item()
            vc += (out.argmax(1) == y).sum().item()
            vn += len(y)
    print(f"epoch {epoch}: train loss {tot / n:.3f}, train acc {correct / n:.3f}, "
          f"val loss {vl / vn:.3f}, val acc {vc / vn:.3f}")
