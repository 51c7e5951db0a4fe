"""Segment 64x64 aerial tiles into ground, vegetation, road and building with a small FCN.

To save compute the tiles and their label masks are resized to 32x32 for training. Evaluation is
done at full resolution: the logits are upsampled back to 64x64 and compared with the original
masks (per-class IoU and mean IoU).
"""
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

CLASSES = ["ground", "vegetation", "road", "building"]
S, TRAIN_S = 64, 32
rng = np.random.default_rng(SEED)
yy, xx = np.mgrid[0:S, 0:S]
COLOURS = np.array([[0.55, 0.50, 0.40], [0.25, 0.55, 0.25], [0.45, 0.45, 0.48], [0.75, 0.40, 0.35]])


def make_tile():
    mask = np.zeros((S, S), np.int64)
    for _ in range(rng.integers(1, 4)):  # tree clumps
        cx, cy, r = rng.uniform(0, S, 3) * [1, 1, 0.15]
        mask[np.hypot(xx - cx, yy - cy) < r + 3] = 1
    if rng.random() < 0.8:  # a road crossing the tile
        if rng.random() < 0.5:
            c = rng.integers(8, S - 8); mask[:, c - 3:c + 3] = 2
        else:
            c = rng.integers(8, S - 8); mask[c - 3:c + 3, :] = 2
    for _ in range(rng.integers(2, 6)):  # buildings
        x0, y0 = rng.integers(0, S - 8, 2)
        w, h = rng.integers(5, 14, 2)
        mask[y0:y0 + h, x0:x0 + w] = 3
    img = COLOURS[mask] + rng.normal(0, 0.06, (S, S, 3))
    img *= rng.uniform(0.8, 1.2)
    return img.transpose(2, 0, 1).astype(np.float32), mask


class AerialTiles(Dataset):
    """Full-resolution tiles and masks, plus copies resized once to the training size."""

    def __init__(self, n, size):
        tiles = [make_tile() for _ in range(n)]
        self.images = torch.tensor(np.stack([t[0] for t in tiles]))
        self.masks = torch.tensor(np.stack([t[1] for t in tiles]))
        self.small_images = F.interpolate(self.images, size=(size, size), mode="bilinear",
                                          align_corners=False)
        self.small_masks = F.interpolate(self.masks[:, None].float(), size=(size, size),
                                         mode="bilinear", align_corners=False)[:, 0].round().long()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.small_images[i], self.small_masks[i]


train_ds = AerialTiles(1000, TRAIN_S)
val_ds = AerialTiles(300, TRAIN_S)
train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class SmallUNet(nn.Module):
    def __init__(self, n_classes=len(CLASSES)):
        super().__init__()
        self.enc1, self.enc2 = block(3, 16), block(16, 32)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.out = nn.Conv2d(16, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        return self.out(self.dec(torch.cat([self.up(e2), e1], dim=1)))


model = SmallUNet()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.CrossEntropyLoss()


def evaluate_full_resolution():
    model.eval()
    inter = torch.zeros(len(CLASSES))
    union = torch.zeros(len(CLASSES))
    correct = 0
    with torch.no_grad():
        for i in range(0, len(val_ds), 100):
            imgs = val_ds.small_images[i:i + 100]
            logits = F.interpolate(model(imgs), size=(S, S), mode="bilinear", align_corners=False)
            pred, target = logits.argmax(1), val_ds.masks[i:i + len(imgs)]
            correct += (pred == target).sum().item()
            for c in range(len(CLASSES)):
                inter[c] += ((pred == c) & (target == c)).sum()
                union[c] += ((pred == c) | (target == c)).sum()
    iou = inter / union.clamp(min=1)
    return correct / val_ds.masks.numel(), iou


EPOCHS = 6
for epoch in range(EPOCHS):
    model.train()
    running, seen = 0.0, 0
    for img, mask in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(img), mask)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(img)
        seen += len(img)
    pix_acc, iou = evaluate_full_resolution()
    if epoch % 2 == 1 or epoch == 0:
        print(f"epoch {epoch}  train loss {running / seen:.4f}  val pixel acc {pix_acc:.3f}  val mIoU {iou.mean():.3f}")

print("final per-class IoU: " + "  ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, iou.tolist())))
print(f"final: pixel acc {pix_acc:.3f}  mIoU {iou.mean():.3f}")
