"""Robot-arm pose regressor whose CNN encoder is called with gradients enabled, so it trains with the head.

A two-link planar arm is rendered from an overhead camera as 32x32 grey images; the network
regresses the two joint angles (as sin/cos). The model encodes the image with a small CNN and a
MLP head maps the features to the pose. The encoder call sits in a `with torch.no_grad():` block
(copied from the inference code that precomputes features), so no gradient reaches the encoder:
only the head learns, on top of random convolution features.
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

S = 32
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
    return np.sqrt((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2)


def render(n):
    q1 = rng.uniform(-math.pi, math.pi, n)
    q2 = rng.uniform(-2.5, 2.5, n)
    X = np.zeros((n, 1, S, S), dtype=np.float32)
    l1, l2, cx, cy = 8.0, 6.5, 15.5, 15.5
    for i in range(n):
        ex, ey = cx + l1 * math.cos(q1[i]), cy + l1 * math.sin(q1[i])
        hx, hy = ex + l2 * math.cos(q1[i] + q2[i]), ey + l2 * math.sin(q1[i] + q2[i])
        d = np.minimum(seg_dist(xx, yy, cx, cy, ex, ey), seg_dist(xx, yy, ex, ey, hx, hy) * 1.4)
        X[i, 0] = np.exp(-d ** 2 / 2.0) + rng.normal(0, 0.05, (S, S))
    Y = np.stack([np.sin(q1), np.cos(q1), np.sin(q2), np.cos(q2)], 1).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(Y)


class PoseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 16, 128), nn.ReLU(), nn.Linear(128, 4))

    def forward(self, x):
        z = self.encoder(x)
        return self.head(z)


Xtr, Ytr = render(3000)
Xva, Yva = render(1000)
model = PoseNet()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def angle_err(p, y):
    e1 = torch.atan2(p[:, 0], p[:, 1]) - torch.atan2(y[:, 0], y[:, 1])
    e2 = torch.atan2(p[:, 2], p[:, 3]) - torch.atan2(y[:, 2], y[:, 3])
    e1 = torch.atan2(torch.sin(e1), torch.cos(e1)).abs()
    e2 = torch.atan2(torch.sin(e2), torch.cos(e2)).abs()
    return math.degrees(e1.mean().item()), math.degrees(e2.mean().item())


EPOCHS, BATCH = 10, 64
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(Xtr))
    tot = 0.0
    for i in range(0, len(Xtr), BATCH):
        idx = perm[i:i + BATCH]
        loss = F.mse_loss(model(Xtr[idx]), Ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        p = model(Xva)
        vl = F.mse_loss(p, Yva).item()
        e1, e2 = angle_err(p, Yva)
    print(f"epoch {epoch}: train mse {tot / len(Xtr):.4f}, val mse {vl:.4f}, "
          f"val mean error shoulder {e1:.1f} deg, elbow {e2:.1f} deg")
