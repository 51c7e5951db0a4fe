"""Small CNN whose Dataset.__getitem__ applies brightness/contrast jitter and per-pixel noise in pure Python loops,
with DataLoader(num_workers=0): each step waits on the Python augmentation."""
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

n_classes, n = 4, 384
images = torch.rand(n, 3, 32, 32) * 0.5
labels = torch.randint(0, n_classes, (n,))
for c in range(n_classes):
    images[labels == c, c % 3, c * 8:(c + 1) * 8, :] += 0.5


class JitterDataset(Dataset):
    def __len__(self):
        return n

    def __getitem__(self, i):
        img = images[i].tolist()
        gain, bias = random.uniform(0.8, 1.2), random.uniform(-0.1, 0.1)
        out = [[[min(max(v * gain + bias + random.gauss(0.0, 0.02), 0.0), 1.0) for v in row] for row in ch]
               for ch in img]
        return torch.tensor(out), labels[i]


loader = DataLoader(JitterDataset(), batch_size=32, shuffle=True, num_workers=0)
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 8 * 8, n_classes),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(3):
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    print(f"epoch {epoch} loss {total / len(loader):.4f}")
