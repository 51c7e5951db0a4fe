"""SimSiam pretraining of a 1D CNN on unlabelled Raman spectra, then a linear probe; the loss stops the gradient through the target projection z.

Ten minerals, each with three characteristic Raman peaks. Measured spectra also contain
fluorescence bumps, a sloping baseline, a random wavenumber shift, intensity scaling and noise. The
encoder is pretrained with SimSiam on 3000 unlabelled spectra (two augmented views, projector,
predictor, symmetric negative-cosine loss), then frozen; a linear classifier is trained on 400
labelled spectra and tested on 1000 others.
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

K, L = 10, 128
rng = np.random.default_rng(SEED)
grid = np.arange(L)
peaks = [(rng.uniform(15, 113, 3), rng.uniform(0.8, 1.5, 3), rng.uniform(1.5, 3, 3)) for _ in range(K)]


def measure(n):
    y = rng.integers(0, K, n)
    x = np.zeros((n, L))
    for i, c in enumerate(y):
        pos, amp, wid = peaks[c]
        shift = rng.normal(0, 3.0)
        for p, a, w in zip(pos, amp, wid):
            x[i] += a * rng.uniform(0.6, 1.4) * np.exp(-0.5 * ((grid - p - shift) / w) ** 2)
        for _ in range(2):  # fluorescence / impurity bumps
            x[i] += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((grid - rng.uniform(0, L)) / rng.uniform(3, 12)) ** 2)
        x[i] += rng.uniform(0, 0.5) + rng.uniform(-0.005, 0.005) * (grid - L / 2)
        x[i] += 0.08 * rng.standard_normal(L)
    x *= rng.uniform(0.5, 2.0, (n, 1))
    return torch.tensor(x[:, None, :], dtype=torch.float32), torch.tensor(y)


x_unlab, _ = measure(3000)
x_lab, y_lab = measure(400)
x_test, y_test = measure(1000)


def augment(x):
    b = x.size(0)
    shift = torch.randint(-6, 7, (b,))
    idx = (torch.arange(L)[None, :] - shift[:, None]) % L
    x = x.gather(-1, idx[:, None, :])
    g = torch.arange(L, dtype=torch.float32)
    for _ in range(2):
        centre, width = torch.rand(b, 1, 1) * L, 3 + 9 * torch.rand(b, 1, 1)
        x = x + (0.5 + torch.rand(b, 1, 1)) * torch.exp(-0.5 * ((g - centre) / width) ** 2)
    x = x * torch.empty(b, 1, 1).uniform_(0.6, 1.6) + torch.empty(b, 1, 1).uniform_(-0.3, 0.3)
    x = x + torch.empty(b, 1, 1).uniform_(-0.005, 0.005) * (g - L / 2)
    return x + 0.05 * torch.randn_like(x)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )

    def forward(self, x):
        return self.body(x).flatten(1)


class SimSiam(nn.Module):
    def __init__(self, feat=64, proj=128, pred=32):
        super().__init__()
        self.encoder = Encoder()
        self.projector = nn.Sequential(
            nn.Linear(feat, proj, bias=False), nn.BatchNorm1d(proj), nn.ReLU(),
            nn.Linear(proj, proj))
        self.predictor = nn.Sequential(
            nn.Linear(proj, pred, bias=False), nn.BatchNorm1d(pred), nn.ReLU(), nn.Linear(pred, proj))

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.encoder(x1)), self.projector(self.encoder(x2))
        return self.predictor(z1), self.predictor(z2), z1, z2


def negative_cosine(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


model = SimSiam()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

EPOCHS, BATCH = 15, 128
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(x_unlab))
    total, steps = 0.0, 0
    for i in range(0, len(x_unlab), BATCH):
        x = x_unlab[perm[i:i + BATCH]]
        p1, p2, z1, z2 = model(augment(x), augment(x))
        loss = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        steps += 1
    model.eval()
    with torch.no_grad():
        z = F.normalize(model.projector(model.encoder(x_unlab[:512])), dim=1)
    if epoch % 3 == 2 or epoch == 0:
        print(f"epoch {epoch:2d}  simsiam loss {total / steps:.4f}  std of normalised z {z.std(0).mean().item():.4f}")

# linear probe on frozen encoder features
model.eval()
with torch.no_grad():
    f_lab, f_test = model.encoder(x_lab), model.encoder(x_test)
mu, sd = f_lab.mean(0), f_lab.std(0) + 1e-6
f_lab, f_test = (f_lab - mu) / sd, (f_test - mu) / sd
probe = nn.Linear(f_lab.size(1), K)
probe_opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
for _ in range(300):
    probe_loss = F.cross_entropy(probe(f_lab), y_lab)
    probe_opt.zero_grad()
    probe_loss.backward()
    probe_opt.step()
with torch.no_grad():
    test_acc = (probe(f_test).argmax(1) == y_test).float().mean().item()
print(f"linear probe: train loss {probe_loss.item():.4f}  test acc {test_acc:.3f}  (chance {1 / K:.2f})")
