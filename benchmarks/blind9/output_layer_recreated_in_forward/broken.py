"""Classify plankton taxa in 32x32 flow-cytometer images with a small CNN.

Five taxa (round diatoms, chain diatoms, dinoflagellates with one long spine, ciliates with a
fringe, and detritus blobs) imaged as grey-level silhouettes with varying size, rotation,
brightness and sensor noise. The classifier head follows the layout of the MONAI encoder it was
adapted from: an MLP on the flattened feature map.
"""
import math
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

S = 32
N_CLASSES = 5
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)


def render(label):
    cx, cy = rng.uniform(12, 20, 2)
    r = rng.uniform(4, 7)
    ang = rng.uniform(0, np.pi)
    img = np.zeros((S, S), np.float32)
    d = np.hypot(xx - cx, yy - cy)
    if label == 0:  # round diatom: ring with bright rim
        img += np.exp(-((d - r) ** 2) / 2.0) + 0.3 * (d < r)
    elif label == 1:  # chain: three small discs in a row
        for k in (-1, 0, 1):
            px, py = cx + k * 2.2 * r / 2 * math.cos(ang), cy + k * 2.2 * r / 2 * math.sin(ang)
            img += (np.hypot(xx - px, yy - py) < r / 2).astype(np.float32)
    elif label == 2:  # dinoflagellate: disc plus one long spine
        img += (d < r).astype(np.float32)
        t = (xx - cx) * math.cos(ang) + (yy - cy) * math.sin(ang)
        n = -(xx - cx) * math.sin(ang) + (yy - cy) * math.cos(ang)
        img += ((t > 0) & (t < 2.2 * r) & (np.abs(n) < 0.8)).astype(np.float32)
    elif label == 3:  # ciliate: disc with a fringe of short cilia
        theta = np.arctan2(yy - cy, xx - cx)
        img += (d < r).astype(np.float32)
        img += ((d > r) & (d < r + 2) & (np.sin(12 * theta) > 0.3)).astype(np.float32) * 0.8
    else:  # detritus: irregular blob
        for _ in range(4):
            px, py = cx + rng.normal(0, 2.5), cy + rng.normal(0, 2.5)
            img += np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * rng.uniform(1.5, 3.5) ** 2))
    img = np.clip(img, 0, 1.5) * rng.uniform(0.6, 1.2)
    return img + rng.normal(0, 0.15, img.shape).astype(np.float32)


def make(n):
    labels = rng.integers(0, N_CLASSES, n)
    imgs = np.stack([render(c) for c in labels])[:, None]
    return torch.tensor(imgs, dtype=torch.float32), torch.tensor(labels)


x_train, y_train = make(3000)
x_val, y_val = make(800)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)


class PlanktonNet(nn.Module):
    def __init__(self, n_classes=N_CLASSES):
        super().__init__()
        self.n_classes = n_classes
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.out = nn.Sequential(nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(64, n_classes))

    def forward(self, x):
        h = self.features(x)
        h = h.reshape(h.shape[0], -1)
        self.out = nn.Sequential(nn.Linear(h.shape[1], 64), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(64, self.n_classes))
        return self.out(h)


model = PlanktonNet()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()


def evaluate():
    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for xb, yb in val_loader:
            logits = model(xb)
            loss_sum += criterion(logits, yb).item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(yb)
    return loss_sum / total, correct / total


EPOCHS = 8
for epoch in range(EPOCHS):
    model.train()
    running, hits, seen = 0.0, 0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(yb)
        hits += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    val_loss, val_acc = evaluate()
    print(f"epoch {epoch}  train loss {running / seen:.4f}  train acc {hits / seen:.3f}  "
          f"val loss {val_loss:.4f}  val acc {val_acc:.3f}")

print(f"final: val loss {val_loss:.4f}  val acc {val_acc:.3f}  (chance {1 / N_CLASSES:.2f})")
