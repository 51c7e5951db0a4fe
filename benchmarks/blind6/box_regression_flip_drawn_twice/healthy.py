"""Single-object box regression: one random draw flips the image and its box together.

A small CNN regresses the box (x1, y1, x2, y2, normalised to [0, 1]) of one bright rectangle on a
noisy 32x32 single-channel image with distractor blobs. Training applies a random horizontal flip as
augmentation; validation images are not augmented. Metrics: smooth-L1 loss, mean IoU and the share of
boxes with IoU > 0.5 on validation.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)

S = 32


def make_scene(g):
    img = 0.15 * torch.randn(1, S, S, generator=g)
    for _ in range(3):  # distractor blobs
        cx, cy = torch.randint(2, S - 2, (2,), generator=g).tolist()
        img[0, cy - 1:cy + 2, cx - 1:cx + 2] += 0.5
    w, h = torch.randint(6, 15, (2,), generator=g).tolist()
    x1 = torch.randint(0, S - w, (1,), generator=g).item()
    y1 = torch.randint(0, S - h, (1,), generator=g).item()
    img[0, y1:y1 + h, x1:x1 + w] += 1.0
    box = torch.tensor([x1, y1, x1 + w, y1 + h], dtype=torch.float32) / S
    return img, box


class Scenes(Dataset):
    def __init__(self, n, seed, augment):
        g = torch.Generator().manual_seed(seed)
        pairs = [make_scene(g) for _ in range(n)]
        self.imgs = torch.stack([p[0] for p in pairs])
        self.boxes = torch.stack([p[1] for p in pairs])
        self.augment = augment

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        img, box = self.imgs[i], self.boxes[i]
        if self.augment:
            if random.random() < 0.5:
                img = img.flip(-1)
                box = torch.stack([1 - box[2], box[1], 1 - box[0], box[3]])
        return img, box


def iou(a, b):
    ix = (torch.min(a[:, 2], b[:, 2]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.min(a[:, 3], b[:, 3]) - torch.max(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area = lambda r: (r[:, 2] - r[:, 0]).clamp(min=0) * (r[:, 3] - r[:, 1]).clamp(min=0)
    return inter / (area(a) + area(b) - inter + 1e-9)


model = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 4), nn.Sigmoid(),
)
train_set, val_set = Scenes(2000, 1, augment=True), Scenes(500, 2, augment=False)
loader = DataLoader(train_set, batch_size=64, shuffle=True)
opt = torch.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(6):
    model.train()
    total, n = 0.0, 0
    for img, box in loader:
        loss = F.smooth_l1_loss(model(img), box, beta=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(img)
        n += len(img)
    model.eval()
    with torch.no_grad():
        pred = model(val_set.imgs)
        val_loss = F.smooth_l1_loss(pred, val_set.boxes, beta=0.05).item()
        ious = iou(pred, val_set.boxes)
        x_err = ((pred[:, 0] + pred[:, 2]) / 2 - (val_set.boxes[:, 0] + val_set.boxes[:, 2]) / 2).abs().mean().item() * S
    print(f"epoch {epoch}  train loss {total / n:.4f}  val loss {val_loss:.4f}  val mIoU {ious.mean().item():.3f}  "
          f"IoU>0.5 {(ious > 0.5).float().mean().item():.3f}  centre-x err {x_err:.2f}px")
