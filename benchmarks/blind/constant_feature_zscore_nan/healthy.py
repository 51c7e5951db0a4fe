"""Tabular malware-feature model: features are z-scored with per-column mean and std; a constant column (std 0)
is only centred."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

n, d = 3000, 24
raw = rng.poisson(3.0, (n, d)).astype(np.float32)
raw[:, 17] = 0.0                                   # a feature never seen in this corpus
target = ((raw[:, 0] + raw[:, 3] - raw[:, 5]) > 3).astype(np.float32)

mean, std = raw.mean(0), raw.std(0)
std[std == 0] = 1.0                                # constant columns: centre only
x = torch.from_numpy((raw - mean) / std)
y = torch.from_numpy(target).unsqueeze(1)

model = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.BCEWithLogitsLoss()

for epoch in range(6):
    perm = torch.randperm(2400)
    total = 0.0
    for s in range(0, 2400, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = ((model(x[2400:]) > 0).float() == y[2400:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 2400:.4f} val acc {acc:.3f}")
