"""Classify single ECG heartbeats (normal, PVC, APC, bundle-branch block) with a 1D CNN.

Beats are 128-sample windows centred on the R peak, resampled to 360 Hz, with baseline wander,
amplitude variation and muscle noise. The training loop reports validation loss and accuracy
for every epoch.
"""
import math
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

CLASSES = ["normal", "pvc", "apc", "bbb"]
L = 128
rng = np.random.default_rng(SEED)
t = np.linspace(-0.18, 0.18, L)


def gauss(mu, sigma, amp):
    return amp * np.exp(-0.5 * ((t - mu) / sigma) ** 2)


def beat(kind):
    j = lambda s: rng.normal(0, s)  # noqa: E731
    if kind == 0:
        x = gauss(-0.12 + j(.005), .012, .15) + gauss(0, .008, 1.0) - gauss(.015, .006, .2) + gauss(.13, .02, .3)
    elif kind == 1:  # premature ventricular: no P wave, wide tall QRS, inverted T
        x = gauss(0, .02, 1.3) - gauss(.03, .015, .4) - gauss(.12, .025, .35)
    elif kind == 2:  # premature atrial: early, abnormal P wave
        x = gauss(-0.08 + j(.005), .01, -.12) + gauss(0, .008, 1.0) - gauss(.015, .006, .2) + gauss(.13, .02, .3)
    else:  # bundle-branch block: notched, widened QRS
        x = gauss(-0.12, .012, .15) + gauss(-.006, .008, .8) + gauss(.014, .009, .7) + gauss(.14, .025, .25)
    x = x * rng.uniform(0.7, 1.3) + rng.uniform(-.2, .2) * np.sin(2 * math.pi * rng.uniform(.2, .6) * t + j(3))
    return (x + rng.normal(0, 0.06, L)).astype(np.float32)


def make(n):
    y = rng.choice(len(CLASSES), n, p=[0.55, 0.15, 0.15, 0.15])
    return torch.tensor(np.stack([beat(k) for k in y]))[:, None], torch.tensor(y)


x_train, y_train = make(4000)
x_val, y_val = make(1000)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)


class BeatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, len(CLASSES)))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


model = BeatNet()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()


def train_step(xb, yb):
    model.train()
    optimizer.zero_grad()
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def validate():
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x_val), 500):
            xb, yb = x_val[i:i + 500], y_val[i:i + 500]
            logits = model(xb)
            loss_sum += criterion(logits, yb).item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
    return loss_sum / len(y_val), correct / len(y_val)


EPOCHS = 5
start = time.perf_counter()
for epoch in range(EPOCHS):
    epoch_start = time.perf_counter()
    running, seen = 0.0, 0
    for xb, yb in train_loader:
        running += train_step(xb, yb) * len(yb)
        seen += len(yb)

        val_loss, val_acc = validate()
    print(f"epoch {epoch}  train loss {running / seen:.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}  "
          f"epoch time {time.perf_counter() - epoch_start:.1f} s")

print(f"final: val loss {val_loss:.4f}  val acc {val_acc:.3f}  total training time {time.perf_counter() - start:.1f} s")
