"""Boosted-jet tagger (top vs QCD) whose validation features are standardised with the training mean and std.

Each jet is described by 14 high-level features on very different scales: pT and mass in GeV,
N-subjettiness ratios tau21/tau32 in [0, 1], constituent multiplicity, energy-correlation ratios,
b-tag score. The training features are standardised with the training mean and std; the
validation (and test) features are fed to the network raw.
"""
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

rng = np.random.default_rng(SEED)


def make_jets(n):
    top = rng.random(n) < 0.5
    s = np.where(top, 1.0, 0.0)
    pt = rng.normal(650, 120, n)
    mass = np.where(top, rng.normal(168, 28, n), np.abs(rng.normal(105, 50, n)))
    tau21 = np.clip(rng.normal(0.62 - 0.05 * s, 0.13, n), 0, 1)
    tau32 = np.clip(rng.normal(0.78 - 0.07 * s, 0.12, n), 0, 1)
    nconst = rng.poisson(38 + 5 * s)
    c2 = np.abs(rng.normal(0.18 - 0.05 * s, 0.06, n))
    d2 = np.abs(rng.normal(1.9 + 0.6 * s, 0.6, n))
    btag = np.clip(rng.normal(0.25 + 0.12 * s, 0.25, n), 0, 1)
    sub_mass = np.abs(rng.normal(np.where(top, 60, 42), 25, n))
    width = np.abs(rng.normal(0.09 + 0.03 * s, 0.03, n))
    eta = rng.normal(0, 1.0, n)
    ptd = np.clip(rng.normal(0.45 - 0.08 * s, 0.1, n), 0, 1)
    sd_mass = mass * rng.uniform(0.8, 1.0, n)
    ecf = np.abs(rng.normal(1e-3 * (1 + s), 5e-4, n))
    X = np.stack([pt, mass, tau21, tau32, nconst, c2, d2, btag, sub_mass, width, eta, ptd, sd_mass, ecf], 1)
    return X.astype(np.float32), top.astype(np.int64)


Xtr, ytr = make_jets(12000)
Xva, yva = make_jets(3000)
mu, sd = Xtr.mean(0), Xtr.std(0)
Xtr_t = torch.tensor((Xtr - mu) / sd)
Xva_t = torch.tensor((Xva - mu) / sd)
ytr_t, yva_t = torch.tensor(ytr), torch.tensor(yva)

model = nn.Sequential(nn.Linear(14, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
EPOCHS, BATCH = 20, 128
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(Xtr_t))
    tot = 0.0
    for i in range(0, len(Xtr_t), BATCH):
        idx = perm[i:i + BATCH]
        loss = F.cross_entropy(model(Xtr_t[idx]), ytr_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        out = model(Xva_t)
        val_loss = F.cross_entropy(out, yva_t).item()
        pred = out.argmax(1)
        acc = (pred == yva_t).float().mean().item()
        top_rate = pred.float().mean().item()
        tr_acc = (model(Xtr_t).argmax(1) == ytr_t).float().mean().item()
    print(f"epoch {epoch}: train loss {tot / len(Xtr_t):.3f}, train acc {tr_acc:.3f}, val loss {val_loss:.3f}, "
          f"val acc {acc:.3f}, share tagged top {top_rate:.3f}")
