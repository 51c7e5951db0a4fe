"""Human activity recognition from smartphone inertial windows with a 1D CNN.

UCI-HAR style data: 9 signals (body acceleration, gyroscope, total acceleration,
3 axes each), 128 samples per window, stored as (time, channels) arrays the way
the loader returns them. Six activities, 900 training and 600 validation windows.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

ACTIVITIES = ["walking", "upstairs", "downstairs", "sitting", "standing", "laying"]
T, FS = 128, 50.0  # 2.56 s windows, as in UCI-HAR
CHANNELS = 9  # body_acc xyz, body_gyro xyz, total_acc xyz


def tilt(g, jitter):
    g = [gi + random.gauss(0, jitter) for gi in g]
    n = math.sqrt(sum(gi * gi for gi in g))
    return [gi / n for gi in g]


def make_window(label):
    t = torch.arange(T) / FS
    noise = 0.03 + 0.03 * random.random()
    if label in (0, 1, 2):  # periodic: walking, upstairs, downstairs
        f0, amp, d1, d2, g = {0: (1.9, 0.30, 1.0, 0.5, [0.05, 1.0, 0.10]),
                              1: (1.7, 0.28, 2.2, -0.6, [0.25, 0.95, 0.15]),
                              2: (2.1, 0.40, -0.3, 1.6, [-0.10, 0.95, 0.20])}[label]
        w = 2 * math.pi * f0 * (1 + 0.12 * (random.random() - 0.5))
        a = amp * (0.7 + 0.6 * random.random())
        ph = random.uniform(0, 2 * math.pi)
        bay = a * torch.sin(w * t + ph) + 0.3 * a * torch.sin(2 * w * t + 2 * ph)
        bax = 0.4 * a * torch.sin(w * t + ph + d1)
        baz = 0.25 * a * torch.sin(w * t + ph + 2.0)
        gyx = 0.5 * a * torch.sin(w * t + ph + 0.5)
        gyy = 0.3 * a * torch.sin(2 * w * t + 2 * ph)
        gyz = 0.4 * a * torch.sin(w * t + ph + d2)
        g = tilt(g, 0.08)
    else:  # static postures: only the gravity direction differs
        g = tilt({3: [0.45, 0.85, 0.25], 4: [0.10, 0.99, 0.05], 5: [0.10, 0.20, 0.97]}[label], 0.10)
        sway = 0.02 * torch.sin(2 * math.pi * random.uniform(0.2, 0.6) * t + random.uniform(0, 6.3))
        bax, bay, baz = sway, 0.5 * sway, -sway
        gyx, gyy, gyz = 0.5 * sway, -0.5 * sway, 0.3 * sway
    body = [bax, bay, baz]
    total = [body[i] + g[i] for i in range(3)]
    win = torch.stack(body + [gyx, gyy, gyz] + total, dim=1)  # (T, 9): rows are time steps
    return win + noise * torch.randn(T, CHANNELS)


class AccelDataset(Dataset):
    def __init__(self, n):
        self.labels = [i % len(ACTIVITIES) for i in range(n)]
        random.shuffle(self.labels)
        self.windows = [make_window(c) for c in self.labels]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.windows[i], self.labels[i]


class HARNet(nn.Module):
    def __init__(self, in_ch=CHANNELS, n_classes=6):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_ch, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(64, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x):
        # x: (batch, time, channels) -> Conv1d wants (batch, channels, time)
        x = x.view(x.size(0), x.size(2), x.size(1))
        return self.fc(self.features(x).flatten(1))


@torch.no_grad()
def evaluate(model, loader, criterion):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    hits, totals = [0] * len(ACTIVITIES), [0] * len(ACTIVITIES)
    for x, y in loader:
        out = model(x)
        loss += criterion(out, y).item() * len(y)
        pred = out.argmax(1)
        correct += (pred == y).sum().item()
        n += len(y)
        for c in range(len(ACTIVITIES)):
            m = y == c
            hits[c] += (pred[m] == c).sum().item()
            totals[c] += m.sum().item()
    return loss / n, correct / n, [h / t for h, t in zip(hits, totals)]


def main():
    train_ds, val_ds = AccelDataset(900), AccelDataset(600)
    train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=200)
    model = HARNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(10):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            out = model(x)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        val_loss, val_acc, recall = evaluate(model, val_loader, criterion)
        print(f"epoch {epoch}: train_loss {tot / n:.4f} train_acc {correct / n:.3f}  "
              f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
    print("val recall per activity: " + ", ".join(f"{a} {r:.2f}" for a, r in zip(ACTIVITIES, recall)))


if __name__ == "__main__":
    main()
