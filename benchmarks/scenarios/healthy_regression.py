# expect: clean
"""A healthy regression MLP on standardised features and targets, manual train/val split."""
import numpy as np
import torch
from torch import nn

rng = np.random.default_rng(4)
X = rng.normal(size=(2000, 10)).astype(np.float32)
w = rng.normal(size=(10,)).astype(np.float32)
Y = (np.sin(X @ w) + 0.1 * rng.normal(size=2000)).astype(np.float32)
x, y = torch.from_numpy(X), torch.from_numpy(Y).unsqueeze(1)
model = nn.Sequential(nn.Linear(10, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
loss_fn = nn.MSELoss()
for epoch in range(8):
    model.train()
    for i in range(0, 1600, 50):
        opt.zero_grad()
        loss = loss_fn(model(x[i:i + 50]), y[i:i + 50])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = loss_fn(model(x[1600:]), y[1600:]).item()
print(f"train {loss.item():.4f} val {val:.4f}")
