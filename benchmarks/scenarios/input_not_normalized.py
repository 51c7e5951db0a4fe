# expect: input_not_normalized
"""Digits-like images kept as raw 0..255 pixel values: the classic missing `/ 255`."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(0)
torch.manual_seed(0)

# 2000 grey 16x16 images: a bright bar in one of 4 positions on a noisy background, stored as uint8.
n = 800
labels = rng.integers(0, 4, n)
images = rng.integers(0, 60, (n, 1, 16, 16)).astype(np.uint8)
for i, c in enumerate(labels):
    images[i, 0, 4 * c:4 * c + 4, :] = rng.integers(180, 256, (4, 16))

x = torch.tensor(images, dtype=torch.float32)  # the bug: pixels stay in 0..255, never scaled or normalised
y = torch.tensor(labels)
loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.Tanh(), nn.Linear(32, 4),
)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(2):
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item()
    print(f"epoch {epoch}: loss {total / len(loader):.3f}")
