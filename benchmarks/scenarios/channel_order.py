# expect: channel_order
"""Colour images loaded as height x width x channels (the PIL/NumPy layout) and fed to Conv2d as they are."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Shapes(Dataset):
    def __init__(self, n=512, seed=0):
        rng = np.random.default_rng(seed)
        self.images = rng.random((n, 32, 32, 3), dtype=np.float32)  # H, W, C as any image library returns them
        self.labels = rng.integers(0, 5, n)
        for i, c in enumerate(self.labels):
            self.images[i, :, :, c % 3] += 0.5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]), int(self.labels[i])  # the bug: no .permute(2, 0, 1)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(16 * 16, 5)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


torch.manual_seed(0)
model = SmallNet()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
for epoch in range(2):
    for images, targets in DataLoader(Shapes(), batch_size=32, shuffle=True):
        optimizer.zero_grad()
        loss = criterion(model(images), targets)
        loss.backward()
        optimizer.step()
    print(epoch, loss.item())
