"""Parkinson's voice-feature classifier evaluated by 5-fold cross-validation with one model reused across folds.

Sustained-vowel recordings summarised by 22 acoustic features (jitter, shimmer, HNR, pitch
statistics, nonlinear measures), one recording from each of 600 speakers; label: Parkinson's disease
or healthy control. The network is built once, before the fold loop; each fold only creates a
new optimizer. From fold 2 on, the model starts from weights already trained on the rows that
are now the validation fold, so the fold scores climb and the cross-validated accuracy is
inflated.
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
N_SPK, REC, D, K = 600, 1, 22, 5
spk_label = rng.random(N_SPK) < 0.5
w = rng.normal(0, 1, D) * (rng.random(D) < 0.5)
spk_base = rng.normal(0, 1, (N_SPK, D))
X, y = [], []
for s in range(N_SPK):
    shift = 0.35 * w * (1 if spk_label[s] else -1)
    for _ in range(REC):
        X.append(spk_base[s] * 0.6 + shift + rng.normal(0, 0.8, D))
        y.append(int(spk_label[s]))
X = np.array(X, dtype=np.float32)
y = np.array(y, dtype=np.int64)
order = rng.permutation(len(X))
X, y = X[order], y[order]
folds = np.array_split(np.arange(len(X)), K)


def make_model():
    return nn.Sequential(nn.Linear(D, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))


EPOCHS, BATCH = 60, 32
scores = []
model = make_model()
for k in range(K):
    va = folds[k]
    tr = np.concatenate([folds[j] for j in range(K) if j != k])
    mu, sd = X[tr].mean(0), X[tr].std(0)
    Xtr = torch.tensor((X[tr] - mu) / sd)
    Xva = torch.tensor((X[va] - mu) / sd)
    ytr, yva = torch.tensor(y[tr]), torch.tensor(y[va])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(Xtr))
        tot = 0.0
        for i in range(0, len(Xtr), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        if epoch % 20 == 19:
            model.eval()
            with torch.no_grad():
                out = model(Xva)
                vl = F.cross_entropy(out, yva).item()
                va_acc = (out.argmax(1) == yva).float().mean().item()
            print(f"fold {k} epoch {epoch}: train loss {tot / len(Xtr):.3f}, val loss {vl:.3f}, val acc {va_acc:.3f}")
    scores.append(va_acc)
    print(f"fold {k}: val acc {va_acc:.3f}")
print(f"cross-validated accuracy {np.mean(scores):.3f} +- {np.std(scores):.3f} (folds: {[round(s, 3) for s in scores]})")
