"""Peptide CCS regression: the regression head ends in a plain Linear layer (no output ReLU).

An embedding + LSTM model predicts a collisional-cross-section-like value of peptides from their
amino-acid sequence (synthetic: length, per-residue volumes, charge and a hydrophobic-moment term,
plus measurement noise). Targets are standardised with the training mean and std. Validation reports
RMSE (in standardised units), R^2, and the share of predictions that are exactly zero.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)

AA = "ACDEFGHIKLMNPQRSTVWY"
VOLUME = torch.tensor([0.9, 1.1, 1.1, 1.3, 1.9, 0.6, 1.5, 1.7, 1.7, 1.7, 1.6, 1.2, 1.1, 1.4, 1.8, 0.9, 1.2, 1.4, 2.3, 1.9])
HYDRO = torch.tensor([1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8, 1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3])
MAXLEN = 24


def make_peptides(n):
    seqs = torch.zeros(n, MAXLEN, dtype=torch.long)
    target = torch.zeros(n)
    for i in range(n):
        L = random.randint(7, MAXLEN)
        res = torch.tensor([random.randrange(20) for _ in range(L)])
        seqs[i, :L] = res + 1
        charge = 1 + int((res == 8).sum() + (res == 14).sum() > 1) + int(L > 16)
        moment = (HYDRO[res] * torch.cos(torch.arange(L) * 1.745)).sum().abs() / L
        target[i] = 120 + 11 * L ** 0.8 + 6 * VOLUME[res].sum() ** 0.9 + 25 * charge - 6 * moment + 4 * random.gauss(0, 1)
    return seqs, target


x_tr, y_tr = make_peptides(3000)
x_va, y_va = make_peptides(600)
mu, sd = y_tr.mean(), y_tr.std()
y_tr, y_va = (y_tr - mu) / sd, (y_va - mu) / sd


class CCSRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(21, 32, padding_idx=0)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, seqs):
        mask = (seqs > 0).float().unsqueeze(-1)
        h, _ = self.lstm(self.emb(seqs))
        pooled = (h * mask).sum(1) / mask.sum(1)
        return self.head(pooled).squeeze(-1)


model = CCSRegressor()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(8):
    model.train()
    perm = torch.randperm(len(x_tr))
    total = 0.0
    for i in range(0, len(perm), 64):
        b = perm[i:i + 64]
        loss = F.mse_loss(model(x_tr[b]), y_tr[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    model.eval()
    with torch.no_grad():
        p = model(x_va)
        rmse = (p - y_va).pow(2).mean().sqrt().item()
        r2 = 1 - (p - y_va).pow(2).sum().item() / (y_va - y_va.mean()).pow(2).sum().item()
        zeros = (p == 0).float().mean().item()
    print(f"epoch {epoch}  train mse {total / len(x_tr):.4f}  val rmse {rmse:.4f}  val R2 {r2:.3f}  zero preds {zeros:.2f}")
