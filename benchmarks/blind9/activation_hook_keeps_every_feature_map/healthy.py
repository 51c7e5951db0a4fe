"""Classify side-scan sonar patches with a small CNN; the activation monitor keeps one number per ReLU call, not the feature maps.

A forward-hook based ActivationMonitor watches the ReLU layers during training and reports, at the
end of every epoch, the share of positive ReLU outputs per layer over that epoch, together with the
process's peak resident memory.
"""
import random
import resource
from collections import defaultdict

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
CLASSES = ["seabed", "rock", "object"]
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)


def sonar_patch(label):
    # along-track ripples of the seabed, range-dependent gain, speckle
    k = rng.uniform(0.3, 0.8)
    phase = rng.uniform(0, 2 * np.pi)
    img = 0.4 + 0.15 * np.sin(k * xx + 0.2 * yy + phase)
    if label == 1:  # rock: bright irregular blobs with acoustic shadows behind them
        for _ in range(rng.integers(2, 5)):
            cx, cy, r = rng.uniform(4, 24), rng.uniform(4, 28), rng.uniform(2, 4)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += 0.9 * blob
            img[(np.abs(yy - cy) < r) & (xx > cx + r) & (xx < cx + 3 * r)] *= 0.3
    elif label == 2:  # object: a bright straight-edged highlight and a long rectangular shadow
        cx, cy = rng.uniform(6, 18), rng.uniform(8, 24)
        w, h = rng.uniform(2, 4), rng.uniform(5, 9)
        img[(np.abs(xx - cx) < w) & (np.abs(yy - cy) < h)] += 0.9
        img[(xx > cx + w) & (xx < cx + w + 10) & (np.abs(yy - cy) < h)] *= 0.2
    img *= (0.7 + 0.6 * xx / S)  # time-varying gain
    img *= rng.gamma(4.0, 0.25, img.shape)  # speckle
    return img.astype(np.float32)


def make(n):
    labels = rng.integers(0, len(CLASSES), n)
    return torch.tensor(np.stack([sonar_patch(c) for c in labels])[:, None]), torch.tensor(labels)


x_train, y_train = make(2000)
x_val, y_val = make(600)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=50, shuffle=True)
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=200)


class SonarNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU())
        self.block3 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, len(CLASSES))

    def forward(self, x):
        h = self.block3(self.block2(self.block1(x)))
        return self.head(h.mean(dim=(2, 3)))


class ActivationMonitor:
    """Records what each ReLU outputs, to report how many units fire."""

    def __init__(self, model):
        self.records = defaultdict(list)
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, nn.ReLU):
                self.handles.append(module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name):
        def hook(module, inputs, output):
            self.records[name].append(float((output.detach() > 0).float().mean()))
        return hook

    def active_fraction(self, last_n):
        out = {}
        for name, recs in self.records.items():
            out[name] = float(np.mean(recs[-last_n:]))
        return out


model = SonarNet()
monitor = ActivationMonitor(model)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


EPOCHS = 6
print(f"start: peak RSS {peak_rss_mb():.0f} MB")
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
    active = monitor.active_fraction(last_n=len(train_loader))
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in val_loader:
            correct += (model(xb).argmax(1) == yb).sum().item()
    active_txt = " ".join(f"{k}:{v:.2f}" for k, v in active.items())
    print(f"epoch {epoch}  train loss {running / seen:.4f}  val acc {correct / len(y_val):.3f}  "
          f"relu active [{active_txt}]  peak RSS {peak_rss_mb():.0f} MB")
