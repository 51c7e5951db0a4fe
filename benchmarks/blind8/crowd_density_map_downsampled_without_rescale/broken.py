"""Crowd counting: a small fully convolutional network regresses a density map.

Synthetic top-down frames of a plaza: every head is a small bright blob on a noisy,
textured floor. The annotation is the list of head positions. As in CSRNet-style
training, each head becomes a normalised Gaussian (one unit of mass per head) and the
density map is brought down to the network's output resolution (1/4) before the
pixel-wise loss. The count of a frame is the sum of its predicted density map.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

IMG = 32
DOWN = 4          # the network pools twice by 2
SIGMA = 1.5       # Gaussian kernel of the ground-truth density, in pixels
EPOCHS = 8
BATCH = 16

_ys = torch.arange(IMG).float().view(1, -1, 1)
_xs = torch.arange(IMG).float().view(1, 1, -1)


def head_blobs(points, sigma):
    """(N, 2) head positions -> (N, IMG, IMG) Gaussians, one per head."""
    py = points[:, 0].view(-1, 1, 1)
    px = points[:, 1].view(-1, 1, 1)
    return torch.exp(-((_ys - py) ** 2 + (_xs - px) ** 2) / (2 * sigma ** 2))


def make_frame(count):
    points = torch.rand(count, 2) * (IMG - 3) + 1.5
    floor = 0.25 * torch.rand(1, IMG, IMG)
    floor = F.avg_pool2d(floor.unsqueeze(0), 3, stride=1, padding=1).squeeze(0)
    stripes = 0.08 * torch.sin(torch.arange(IMG).float() * random.uniform(0.3, 0.9)).view(1, -1)
    brightness = 0.7 + 0.5 * torch.rand(count, 1, 1)
    heads = (brightness * head_blobs(points, 1.1)).sum(0, keepdim=True)
    image = floor + stripes + heads.clamp(max=1.5) + 0.05 * torch.randn(1, IMG, IMG)
    blobs = head_blobs(points, SIGMA)
    density = (blobs / blobs.sum(dim=(1, 2), keepdim=True)).sum(0, keepdim=True)
    return image, density


class CrowdFrames(Dataset):
    def __init__(self, n, max_count):
        self.images, self.densities, self.counts = [], [], []
        for _ in range(n):
            count = random.randint(3, max_count)
            image, density = make_frame(count)
            self.images.append(image)
            self.densities.append(density)
            self.counts.append(count)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        density = self.densities[idx]
        # the network's output map is IMG/DOWN wide: resample the target to match
        target = F.interpolate(density.unsqueeze(0), scale_factor=1 / DOWN, mode="area").squeeze(0)
        return self.images[idx], target, float(self.counts[idx])


class CountNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
        )
        self.output = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        return self.output(self.features(x))


def evaluate(model, loader):
    model.eval()
    abs_err, sq_err, n = 0.0, 0.0, 0
    with torch.no_grad():
        for images, _, counts in loader:
            pred = model(images).sum(dim=(1, 2, 3))
            abs_err += (pred - counts).abs().sum().item()
            sq_err += ((pred - counts) ** 2).sum().item()
            n += counts.numel()
    return abs_err / n, math.sqrt(sq_err / n)


def main():
    train_set = CrowdFrames(512, max_count=40)
    val_set = CrowdFrames(160, max_count=40)
    train_loader = DataLoader(train_set, batch_size=BATCH, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=64)

    model = CountNet()
    criterion = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(EPOCHS):
        model.train()
        total, batches = 0.0, 0
        for images, targets, _ in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), targets) / images.size(0)
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        mae, rmse = evaluate(model, val_loader)
        print(f"epoch {epoch:2d}  train loss {total / batches:.5f}  val MAE {mae:6.2f}  val RMSE {rmse:6.2f}")


if __name__ == "__main__":
    main()
