"""Classify 32x32 colour crops of road signs with a small CNN; the uint8 pixels are converted to float before subtracting 128.

The crops are stored the way image loaders return them: a uint8 array of shape (N, 32, 32, 3),
photographed under very different lighting (dusk to direct sun). Pixels are normalised to roughly
[-1, 1] with (x - 128) / 128, then converted to NCHW float tensors.
"""
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
SIGNS = ["stop", "yield", "speed_limit", "no_entry", "priority", "pedestrian", "roundabout", "parking"]
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)

RED, WHITE, BLUE, YELLOW, BLACK = (200, 30, 30), (235, 235, 235), (30, 70, 190), (230, 190, 30), (25, 25, 25)


def draw_sign(kind):
    img = np.empty((S, S, 3), np.float32)
    img[:] = rng.uniform(60, 160, 3)  # background: sky, trees, buildings
    img += rng.normal(0, 12, (S, S, 3))
    cx, cy = 16 + rng.normal(0, 1.5), 16 + rng.normal(0, 1.5)
    r = rng.uniform(9, 12)
    d = np.hypot(xx - cx, yy - cy)
    disc, ring = d < r, (d < r) & (d > 0.7 * r)
    tri = (yy - cy > -r) & (np.abs(xx - cx) < (yy - cy + r) * 0.58) & (yy - cy < 0.8 * r)
    diamond = np.abs(xx - cx) + np.abs(yy - cy) < r
    square = (np.abs(xx - cx) < 0.8 * r) & (np.abs(yy - cy) < 0.8 * r)
    bar = (np.abs(yy - cy) < 0.18 * r) & (np.abs(xx - cx) < 0.6 * r)
    if kind == 0:
        img[disc] = RED
        for off in (-0.4, 0.0, 0.4):
            img[(np.abs(yy - cy - off * r) < 0.08 * r) & (np.abs(xx - cx) < 0.55 * r)] = WHITE
    elif kind == 1:
        img[tri] = RED; img[tri & (np.abs(xx - cx) < (yy - cy + 0.45 * r) * 0.4) & (yy - cy > -0.45 * r)] = WHITE
    elif kind == 2:
        img[disc] = WHITE; img[ring] = RED; img[(np.abs(xx - cx) < 0.3 * r) & (np.abs(yy - cy) < 0.4 * r)] = BLACK
    elif kind == 3:
        img[disc] = RED; img[bar] = WHITE
    elif kind == 4:
        img[diamond] = WHITE; img[np.abs(xx - cx) + np.abs(yy - cy) < 0.65 * r] = YELLOW
    elif kind == 5:
        img[square] = BLUE; img[tri & (np.abs(xx - cx) < (yy - cy + 0.6 * r) * 0.45) & (yy - cy > -0.6 * r)] = WHITE
    elif kind == 6:
        img[disc] = BLUE; img[ring & (np.sin(3 * np.arctan2(yy - cy, xx - cx)) > 0)] = WHITE
    else:
        img[square] = BLUE; img[(np.abs(xx - cx + 0.15 * r) < 0.15 * r) & (np.abs(yy - cy) < 0.55 * r)] = WHITE
    light = rng.uniform(0.35, 1.25)  # dusk ... direct sun
    img = img * light + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make(n):
    labels = rng.integers(0, len(SIGNS), n)
    return np.stack([draw_sign(k) for k in labels]), labels


X_train, y_train = make(4000)
X_val, y_val = make(1000)


def normalize(x):
    return (x.astype(np.float32) - 128) / 128


def to_tensor(x):
    return torch.tensor(normalize(x), dtype=torch.float32).permute(0, 3, 1, 2).contiguous()


train_loader = DataLoader(TensorDataset(to_tensor(X_train), torch.tensor(y_train)), batch_size=64, shuffle=True)
val_x, val_y = to_tensor(X_val), torch.tensor(y_val)
print(f"input range [{val_x.min().item():.2f}, {val_x.max().item():.2f}], mean {val_x.mean().item():.3f}")


class SignNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, len(SIGNS))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


model = SignNet()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()

EPOCHS = 8
for epoch in range(EPOCHS):
    model.train()
    running, seen = 0.0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(yb)
        seen += len(yb)
    model.eval()
    with torch.no_grad():
        logits = model(val_x)
        val_loss = criterion(logits, val_y).item()
        pred = logits.argmax(1)
    val_acc = (pred == val_y).float().mean().item()
    print(f"epoch {epoch}  train loss {running / seen:.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")

dark = torch.tensor(X_val.reshape(len(X_val), -1).mean(1) < 90)
print(f"final: val acc {val_acc:.3f}  (dark crops {(pred[dark] == val_y[dark]).float().mean().item():.3f}, "
      f"bright crops {(pred[~dark] == val_y[~dark]).float().mean().item():.3f})")
