"""EEG seizure detector whose WeightedRandomSampler is built with replacement=False, so it does not rebalance.

Two-second scalp-EEG windows summarised by 32 features (band powers per channel group, line
length, entropy); about 4% of the windows are seizure. To balance the batches, a
WeightedRandomSampler gets per-sample weights 1/class_count and num_samples=len(dataset), but
replacement=False. Drawing len(dataset) samples without replacement returns every window exactly
once, a plain shuffle: the batches keep the 4% seizure share and the weighting has no effect.
"""
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

rng = np.random.default_rng(SEED)
D = 32
w = rng.normal(0, 1, D) * (rng.random(D) < 0.4)


def make_windows(n):
    seizure = rng.random(n) < 0.04
    X = rng.normal(0, 1, (n, D)) + 0.45 * np.outer(seizure, w)
    X[seizure] *= rng.uniform(1.0, 1.6, (seizure.sum(), 1))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(seizure.astype(np.int64))


Xtr, ytr = make_windows(30000)
Xva, yva = make_windows(5000)
counts = torch.bincount(ytr)
sample_w = (1.0 / counts.float())[ytr]
sampler = WeightedRandomSampler(sample_w, num_samples=len(ytr), replacement=False)
loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=128, sampler=sampler)
print(f"train windows {len(ytr)}, seizure share {ytr.float().mean():.3f}")

model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    model.train()
    tot, n, seen_pos = 0.0, 0, 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(y)
        n += len(y)
        seen_pos += y.sum().item()
    model.eval()
    with torch.no_grad():
        out = model(Xva)
        pred = out.argmax(1)
        vl = F.cross_entropy(out, yva).item()
    tp = ((pred == 1) & (yva == 1)).sum().item()
    rec = tp / (yva == 1).sum().item()
    prec = tp / max(1, (pred == 1).sum().item())
    spec = ((pred == 0) & (yva == 0)).sum().item() / (yva == 0).sum().item()
    print(f"epoch {epoch}: seizure share in batches {seen_pos / n:.3f}, train loss {tot / n:.3f}, val loss {vl:.3f}, "
          f"val acc {(pred == yva).float().mean():.3f}, seizure recall {rec:.3f}, precision {prec:.3f}, "
          f"balanced acc {(rec + spec) / 2:.3f}")
