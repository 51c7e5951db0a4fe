"""Tabular price regression: the head keeps its [B, 1] output, matching the [B, 1] targets.

An MLP predicts a standardised sale price from 12 numeric listing features (synthetic listings with
interactions and noise). Adam, 12 epochs, batch 64; validation RMSE and R^2 on held-out listings.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)

N_TRAIN, N_VAL, N_FEAT = 4000, 1000, 12


def make_listings(n):
    x = torch.randn(n, N_FEAT)
    # size, rooms, age, distance to centre, ... with interactions
    price = (1.2 * x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] + 0.5 * x[:, 0] * x[:, 3]
             - 0.7 * torch.tanh(2 * x[:, 4]) + 0.4 * x[:, 5] ** 2 + 0.3 * torch.sin(3 * x[:, 6]))
    price = price + 0.25 * torch.randn(n)
    return x, price


x_tr, y_tr = make_listings(N_TRAIN)
x_va, y_va = make_listings(N_VAL)
mu, sd = y_tr.mean(), y_tr.std()
y_tr = ((y_tr - mu) / sd).unsqueeze(1)   # targets stored as a column, [N, 1]
y_va = ((y_va - mu) / sd).unsqueeze(1)

train_loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)


class PriceRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(N_FEAT, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.body(x))


model = PriceRegressor()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
crit = nn.MSELoss()

for epoch in range(12):
    model.train()
    total, n = 0.0, 0
    for xb, yb in train_loader:
        pred = model(xb)
        loss = crit(pred, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
        n += len(xb)
    model.eval()
    with torch.no_grad():
        pv = model(x_va).reshape(-1)
        tv = y_va.reshape(-1)
        rmse = math.sqrt(((pv - tv) ** 2).mean().item())
        r2 = 1 - ((pv - tv) ** 2).sum().item() / ((tv - tv.mean()) ** 2).sum().item()
    if epoch % 2 == 1 or epoch == 0:
        print(f"epoch {epoch:2d}  train loss {total / n:.4f}  val rmse {rmse:.4f}  val R2 {r2:.3f}  pred std {pv.std().item():.3f}")
