"""Household-load TCN forecaster whose dilated convolutions use symmetric ('same') padding, so position t sees t+1.

Hourly electricity use of a household (daily and weekly cycles, weather-driven heating, noise).
A temporal convolutional network is trained WaveNet-style: for a window x[0:L] it predicts
x[1:L+1] at every position. Each dilated Conv1d pads d on both sides (padding=d, the usual way
to keep the length), which makes the convolution non-causal: the output at position t depends on
x[t+1], which is the target. Training and teacher-forced validation losses look excellent; the
real task, a 24-hour forecast made step by step from the end of a window, is poor.
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

HOURS = 24 * 7 * 40
rng = np.random.default_rng(SEED)
t = np.arange(HOURS)
temp = 8 + 7 * np.sin(2 * math.pi * t / (24 * 365)) + np.cumsum(rng.normal(0, 0.3, HOURS)) * 0.05
daily = 0.6 * np.exp(-((t % 24 - 7.5) ** 2) / 3) + 1.0 * np.exp(-((t % 24 - 19) ** 2) / 6)
weekend = ((t // 24) % 7 >= 5).astype(float)
ar = np.zeros(HOURS)
for i in range(1, HOURS):
    ar[i] = 0.8 * ar[i - 1] + rng.normal(0, 0.12)
load = 0.4 + daily * (1 + 0.3 * weekend) + 0.03 * np.clip(15 - temp, 0, None) + ar
load = (load - load.mean()) / load.std()
series = torch.tensor(load, dtype=torch.float32)
split = int(HOURS * 0.8)
train_s, val_s = series[:split], series[split:]
L, H = 168, 24  # one week of context, 24-hour forecast


class Block(nn.Module):
    def __init__(self, c, d):
        super().__init__()
        self.conv1 = nn.Conv1d(c, c, 3, dilation=d, padding=d)
        self.conv2 = nn.Conv1d(c, c, 3, dilation=d, padding=d)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        return F.relu(x + self.conv2(h))


class TCN(nn.Module):
    def __init__(self, c=32):
        super().__init__()
        self.inp = nn.Conv1d(1, c, 1)
        self.blocks = nn.Sequential(*[Block(c, d) for d in (1, 2, 4, 8, 16)])
        self.out = nn.Conv1d(c, 1, 1)

    def forward(self, x):  # x: (B, L)
        return self.out(self.blocks(self.inp(x.unsqueeze(1)))).squeeze(1)


def windows(s, n, gen):
    starts = torch.randint(0, len(s) - L - 1, (n,), generator=gen)
    x = torch.stack([s[i:i + L] for i in starts])
    y = torch.stack([s[i + 1:i + L + 1] for i in starts])
    return x, y


@torch.no_grad()
def forecast_mae(model, s):
    errs, naive = [], []
    for start in range(0, len(s) - L - H, 48):
        ctx = s[start:start + L].clone()
        preds = []
        for _ in range(H):
            nxt = model(ctx.unsqueeze(0))[0, -1]
            preds.append(nxt)
            ctx = torch.cat([ctx[1:], nxt.view(1)])
        truth = s[start + L:start + L + H]
        errs.append((torch.stack(preds) - truth).abs().mean().item())
        naive.append((s[start + L - 24:start + L] - truth).abs().mean().item())
    return float(np.mean(errs)), float(np.mean(naive))


gen = torch.Generator().manual_seed(SEED)
model = TCN()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
xv, yv = windows(val_s, 256, gen)
EPOCHS, STEPS, BATCH = 6, 60, 32
for epoch in range(EPOCHS):
    model.train()
    tot = 0.0
    for _ in range(STEPS):
        x, y = windows(train_s, BATCH, gen)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item()
    model.eval()
    with torch.no_grad():
        val_mse = F.mse_loss(model(xv), yv).item()
    mae, naive = forecast_mae(model, val_s)
    print(f"epoch {epoch}: train mse {tot / STEPS:.4f}, val next-step mse (teacher-forced) {val_mse:.4f}, "
          f"val 24h forecast MAE {mae:.3f} (same hours yesterday: {naive:.3f})")
