"""Load forecasting: the dev windows are split chronologically (with a gap) before any shuffling.

An MLP forecasts the next 12 hourly values of an electricity-load-like series (daily and weekly
seasonality, a slow drift and AR(1) noise) from the previous 48. The first 85% of the series is cut
into sliding windows (stride 1) for training and validation; the last 15% is kept as a future test
period that is only scored at the end. The checkpoint with the best validation MSE is kept.
"""
import copy
import math
import random

import torch
import torch.nn as nn

torch.manual_seed(0)
random.seed(0)

T, LOOKBACK, HORIZON = 3000, 48, 12


def make_series(n):
    t = torch.arange(n, dtype=torch.float32)
    daily = torch.sin(2 * math.pi * t / 24) + 0.4 * torch.sin(4 * math.pi * t / 24 + 0.3)
    weekly = 0.6 * torch.sin(2 * math.pi * t / 168)
    drift = 0.3 * torch.sin(2 * math.pi * t / 1500)
    noise = torch.zeros(n)
    eps = 0.35 * torch.randn(n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + eps[i]
    return daily + weekly + drift + noise


series = make_series(T)
cut = int(0.85 * T)
dev_part, test_part = series[:cut], series[cut - LOOKBACK:]
mean, std = dev_part.mean(), dev_part.std()
dev_part, test_part = (dev_part - mean) / std, (test_part - mean) / std


def windows(s):
    xs, ys = [], []
    for i in range(len(s) - LOOKBACK - HORIZON + 1):
        xs.append(s[i:i + LOOKBACK])
        ys.append(s[i + LOOKBACK:i + LOOKBACK + HORIZON])
    return torch.stack(xs), torch.stack(ys)


x_all, y_all = windows(dev_part)
n_tr = int(0.8 * len(x_all))
x_tr, y_tr = x_all[:n_tr], y_all[:n_tr]
x_va, y_va = x_all[n_tr + LOOKBACK + HORIZON:], y_all[n_tr + LOOKBACK + HORIZON:]
x_te, y_te = windows(test_part)

model = nn.Sequential(nn.Linear(LOOKBACK, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, HORIZON))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
mse = nn.MSELoss()
print(f"windows: train {len(x_tr)}  val {len(x_va)}  future test {len(x_te)}")

best_val, best_state, best_epoch = float("inf"), None, -1
for epoch in range(40):
    model.train()
    idx = torch.randperm(len(x_tr))
    total = 0.0
    for i in range(0, len(idx), 128):
        b = idx[i:i + 128]
        loss = mse(model(x_tr[b]), y_tr[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    model.eval()
    with torch.no_grad():
        val = mse(model(x_va), y_va).item()
    if val < best_val:
        best_val, best_state, best_epoch = val, copy.deepcopy(model.state_dict()), epoch
    if epoch % 5 == 4:
        print(f"epoch {epoch:2d}  train mse {total / len(x_tr):.4f}  val mse {val:.4f}")

model.load_state_dict(best_state)
model.eval()
with torch.no_grad():
    test = mse(model(x_te), y_te).item()
    naive = mse(x_te[:, -24:-12], y_te).item()  # same hours of the previous day
print(f"best epoch {best_epoch}  best val mse {best_val:.4f}")
print(f"future test mse {test:.4f}  (seasonal-naive baseline {naive:.4f})")
