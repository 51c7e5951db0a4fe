"""Learn leaf embeddings for 15 tree species from contour Fourier descriptors with an ArcFace head.

Each leaf outline is summarised by 40 elliptic Fourier descriptors (already standardised). An MLP
maps them to a 3-D embedding, so the species clusters can be plotted on the unit sphere, and an
additive angular margin (ArcFace, s=30, m=0.5) head is trained on top. Validation classifies by the
nearest class centre (cosine).
"""
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

N_SPECIES, N_DESC, EMB = 15, 40, 3
rng = np.random.default_rng(SEED)
prototypes = rng.standard_normal((N_SPECIES, N_DESC))
labels = rng.integers(0, N_SPECIES, 6000)
desc = prototypes[labels] + 1.6 * rng.standard_normal((6000, N_DESC))
x = torch.tensor(desc, dtype=torch.float32)
y = torch.tensor(labels)
train_loader = DataLoader(TensorDataset(x[:5000], y[:5000]), batch_size=64, shuffle=True)
val_x, val_y = x[5000:], y[5000:]


class LeafEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_DESC, 128), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, EMB),
        )

    def forward(self, x):
        return self.net(x)


class ArcMarginHead(nn.Module):
    def __init__(self, emb, n_classes, s=30.0, m=0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, emb) * 0.01)
        self.s, self.m = s, m

    def forward(self, emb, target):
        cosine = F.linear(F.normalize(emb), F.normalize(self.weight))
        cosine = cosine.clamp(-1.0, 1.0)
        theta = torch.acos(cosine)
        target_logit = torch.cos(theta + self.m)
        one_hot = F.one_hot(target, cosine.size(1)).bool()
        logits = torch.where(one_hot, target_logit, cosine) * self.s
        return F.cross_entropy(logits, target)


encoder = LeafEncoder()
head = ArcMarginHead(EMB, N_SPECIES)
optimizer = torch.optim.SGD(list(encoder.parameters()) + list(head.parameters()),
                            lr=0.1, momentum=0.9, weight_decay=5e-4)


def validate():
    encoder.eval()
    with torch.no_grad():
        cos = F.linear(F.normalize(encoder(val_x)), F.normalize(head.weight))
        acc = (cos.argmax(1) == val_y).float().mean().item()
    encoder.train()
    return acc


EPOCHS = 70
for epoch in range(EPOCHS):
    total, batches = 0.0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = head(encoder(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
        batches += 1
    if epoch % 10 == 9 or epoch == 0:
        print(f"epoch {epoch:2d}  train loss {total / batches:.4f}  val acc {validate():.3f}")

print(f"final: val acc {validate():.3f}  (chance {1 / N_SPECIES:.3f})")
