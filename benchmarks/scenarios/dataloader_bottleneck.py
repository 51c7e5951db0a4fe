# expect: dataloader_bottleneck
"""Signal classification with per-sample feature extraction done in the Dataset.

Each sample is "decoded" and augmented in Python inside __getitem__, in the training process
(num_workers=0), so the tiny model spends most of each step waiting for its batch.
"""
import math
import random

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Signals(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n
        self.labels = [i % 3 for i in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        rng = random.Random(i)
        freq = 1 + self.labels[i]
        # A pure-Python "decode + augment" per sample: slow, and run in the training process.
        signal = [math.sin(freq * t / 40.0 + rng.random()) + 0.3 * rng.gauss(0, 1) for t in range(2400)]
        feats = [sum(signal[k:k + 80]) / 80 for k in range(0, 2400, 80)]
        return torch.tensor(feats), self.labels[i]


torch.manual_seed(0)
loader = DataLoader(Signals(480), batch_size=32, shuffle=True)  # the bug: num_workers=0, heavy __getitem__
model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()

for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
