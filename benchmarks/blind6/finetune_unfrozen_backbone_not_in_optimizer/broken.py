"""Gradual unfreezing: the backbone is unfrozen at epoch 4, but the optimizer was built from the head's parameters only.

A backbone is pretrained on a large source task (10 classes, 12,000 samples of 64-d sensor
features driven by an 8-d latent state). For the target task (6 new classes, recorded with a
partly different sensor layout, 1,500 labelled samples) a new head is trained on the frozen
backbone for 4 epochs, then the whole backbone is unfrozen for 10 epochs of fine-tuning.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)

LATENT, DIM = 8, 64
mix_src = torch.randn(LATENT, DIM) / LATENT ** 0.5
mix_tgt = mix_src.clone()
mix_tgt[:, 32:] = torch.randn(LATENT, 32) / LATENT ** 0.5          # half of the channels changed
w_src, w_tgt = torch.randn(LATENT, 10), torch.randn(LATENT, 6)


def observe(z, mix):
    h = z @ mix
    return h + 0.3 * torch.sin(2 * h) + 0.5 * torch.randn(len(z), DIM)


def dataset(n, mix, w):
    z = torch.randn(n, LATENT)
    return observe(z, mix), (z @ w).argmax(1)


class Net(nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                      nn.Linear(256, 128), nn.ReLU())
        self.head = nn.Linear(128, n_out)

    def forward(self, x):
        return self.head(self.backbone(x))


def train_epoch(model, opt, x, y):
    perm = torch.randperm(len(x))
    total = 0.0
    for i in range(0, len(perm), 64):
        b = perm[i:i + 64]
        loss = F.cross_entropy(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total / len(x)


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ---- 1. pretraining on the source task ---------------------------------------
xs, ys = dataset(12000, mix_src, w_src)
xs_val, ys_val = dataset(2000, mix_src, w_src)
model = Net(10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(5):
    train_epoch(model, opt, xs, ys)
print(f"pretrained: source val acc {accuracy(model, xs_val, ys_val):.3f}")

# ---- 2. fine-tuning on the target task ---------------------------------------
xt, yt = dataset(1500, mix_tgt, w_tgt)
xt_val, yt_val = dataset(1000, mix_tgt, w_tgt)
model.head = nn.Linear(128, 6)
for p in model.backbone.parameters():
    p.requires_grad = False
opt = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-3)

UNFREEZE_AT = 4
for epoch in range(14):
    if epoch == UNFREEZE_AT:
        for p in model.backbone.parameters():
            p.requires_grad = True
        print("unfroze backbone")
    loss = train_epoch(model, opt, xt, yt)
    if epoch % 2 == 1:
        print(f"epoch {epoch:2d}  train loss {loss:.4f}  train acc {accuracy(model, xt, yt):.3f}  "
              f"val acc {accuracy(model, xt_val, yt_val):.3f}")
