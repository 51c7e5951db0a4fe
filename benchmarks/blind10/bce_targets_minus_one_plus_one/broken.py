"""Exoplanet-transit classifier trained with BCEWithLogitsLoss on labels coded -1/+1 instead of 0/1.

Candidate transit signals from a light-curve pipeline, summarised by 12 features (depth,
duration, SNR, odd/even depth difference, secondary eclipse depth, centroid shift, ...); about
30% are real planets, the rest eclipsing binaries and artefacts. The labels come from an older
SVM pipeline as -1/+1 and are passed to BCEWithLogitsLoss unchanged. For a -1 target the loss is
log(sigmoid(x)) - 2*log(1 - sigmoid(x)), which is unbounded below: its gradient is
sigmoid(x) + 1 >= 1 and never vanishes, so negatives keep pushing every logit down.
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
D = 12


def make_candidates(n):
    planet = rng.random(n) < 0.3
    w = np.array([1.0, 0.6, 0.8, -1.2, -1.0, -0.9, 0.3, 0.0, 0.5, -0.4, 0.0, 0.2])
    X = rng.normal(0, 1, (n, D)) + 0.55 * np.outer(np.where(planet, 1, -1), w)
    labels = np.where(planet, 1, -1)  # SVM-style labels
    return X.astype(np.float32), labels.astype(np.float32)


Xtr, ytr = make_candidates(4000)
Xva, yva = make_candidates(1500)
mu, sd = Xtr.mean(0), Xtr.std(0)
Xtr, Xva = torch.tensor((Xtr - mu) / sd), torch.tensor((Xva - mu) / sd)
ytr, yva = torch.tensor(ytr), torch.tensor(yva)
train_target, val_target = ytr, yva

model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
crit = nn.BCEWithLogitsLoss()
EPOCHS, BATCH = 60, 64
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(Xtr))
    tot = 0.0
    for i in range(0, len(Xtr), BATCH):
        idx = perm[i:i + BATCH]
        loss = crit(model(Xtr[idx]).squeeze(1), train_target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        logits = model(Xva).squeeze(1)
        val_loss = crit(logits, val_target).item()
        pred = logits > 0
        truth = yva > 0
        acc = (pred == truth).float().mean().item()
        recall = (pred & truth).sum().item() / truth.sum().item()
        prec = (pred & truth).sum().item() / max(1, pred.sum().item())
    if epoch % 10 == 0 or epoch == EPOCHS - 1:
        print(f"epoch {epoch}: train loss {tot / len(Xtr):.3f}, val loss {val_loss:.3f}, val acc {acc:.3f}, "
              f"planet recall {recall:.3f}, precision {prec:.3f}, mean logit {logits.mean().item():.1f}")
