# expect: dtype_mismatch
"""Features loaded with NumPy (float64) into a float32 model."""
import numpy as np
import torch
from torch import nn

rng = np.random.default_rng(0)
features = rng.normal(size=(256, 12))  # float64
labels = (features[:, 0] > 0).astype(np.int64)
model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters())
for step in range(3):
    xb = torch.from_numpy(features[step * 32:(step + 1) * 32])  # the bug: no .float()
    yb = torch.from_numpy(labels[step * 32:(step + 1) * 32])
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
