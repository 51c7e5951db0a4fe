"""Detect whether a household is occupied from a day of smart-meter readings with a 1D CNN.

Each sample is one day of 15-minute electricity readings (96 values) plus the day of week. The
Dataset slices the day out of the household's year-long series and scales it by that household's
median load. Training runs a fixed number of optimizer steps per epoch, drawing batches from a
DataLoader with two worker processes.
"""
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

N_HOUSES, DAYS, SLOTS = 24, 365, 96
rng = np.random.default_rng(SEED)
t = np.arange(SLOTS)
base = rng.uniform(0.1, 0.4, (N_HOUSES, 1, 1))
fridge = 0.08 * (np.sin(2 * np.pi * t / 6) > 0.3)
occupied = rng.random((N_HOUSES, DAYS)) < 0.7
load = np.broadcast_to(base + fridge, (N_HOUSES, DAYS, SLOTS)).copy()
for h in range(N_HOUSES):
    morning, evening = rng.uniform(26, 32), rng.uniform(70, 80)
    for d in range(DAYS):
        if occupied[h, d]:
            load[h, d] += 0.25 * np.exp(-((t - morning - rng.normal(0, 4)) ** 2) / 8)
            load[h, d] += 0.35 * np.exp(-((t - evening - rng.normal(0, 6)) ** 2) / 30)
            load[h, d] += (rng.random(SLOTS) < 0.03) * rng.uniform(0.2, 1.0, SLOTS)
        else:
            load[h, d] += (rng.random(SLOTS) < 0.01) * rng.uniform(0.2, 1.0, SLOTS)
load = load * rng.lognormal(0, 0.5, load.shape) + rng.normal(0, 0.05, load.shape)
series = load.reshape(N_HOUSES, -1).astype(np.float32)
median = np.median(series, axis=1)


class MeterDays(Dataset):
    def __init__(self, houses):
        self.index = [(h, d) for h in houses for d in range(DAYS)]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        h, d = self.index[i]
        day = series[h, d * SLOTS:(d + 1) * SLOTS] / median[h]
        weekday = np.zeros(7, np.float32)
        weekday[d % 7] = 1.0
        return torch.from_numpy(day[None].copy()), torch.from_numpy(weekday), int(occupied[h, d])


train_ds = MeterDays(range(0, 18))
val_ds = MeterDays(range(18, 24))
train_loader = DataLoader(train_ds, batch_size=128, shuffle=True, num_workers=2)
val_loader = DataLoader(val_ds, batch_size=512, num_workers=0)


class OccupancyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )
        self.head = nn.Sequential(nn.Linear(32 + 7, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, day, weekday):
        return self.head(torch.cat([self.conv(day).flatten(1), weekday], dim=1))


model = OccupancyNet()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()

EPOCHS = 4
STEPS_PER_EPOCH = len(train_loader)
train_start = time.perf_counter()
for epoch in range(EPOCHS):
    model.train()
    epoch_start = time.perf_counter()
    running, hits, seen = 0.0, 0, 0
    for step in range(STEPS_PER_EPOCH):
        day, weekday, label = next(iter(train_loader))
        optimizer.zero_grad()
        logits = model(day, weekday)
        loss = criterion(logits, label)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(label)
        hits += (logits.argmax(1) == label).sum().item()
        seen += len(label)
    epoch_time = time.perf_counter() - epoch_start
    model.eval()
    correct = 0
    with torch.no_grad():
        for day, weekday, label in val_loader:
            correct += (model(day, weekday).argmax(1) == label).sum().item()
    print(f"epoch {epoch}  train loss {running / seen:.4f}  train acc {hits / seen:.3f}  "
          f"val acc {correct / len(val_ds):.3f}  {1000 * epoch_time / STEPS_PER_EPOCH:.1f} ms/step")

print(f"training time {time.perf_counter() - train_start:.1f} s for {EPOCHS * STEPS_PER_EPOCH} steps")
