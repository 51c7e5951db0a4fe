"""Tiny fully-convolutional segmenter on synthetic 16x16 scenes; FIXED: one random flip decision is drawn and applied to both the image and its mask.

Each scene has a bright asymmetric "L" object at a random spot; the mask marks
its pixels.  Augmentation happens in Dataset.__getitem__.
"""
import random
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)
random.seed(0)

H = W = 16


def make_scene(g):
    img = torch.rand(1, H, W, generator=g) * 0.5
    mask = torch.zeros(H, W, dtype=torch.long)
    r = int(torch.randint(0, H - 6, (1,), generator=g))
    c = int(torch.randint(0, W - 8, (1,), generator=g))
    mask[r:r + 6, c:c + 2] = 1          # vertical bar of the "L"
    mask[r + 4:r + 6, c:c + 7] = 1      # foot of the "L"
    img[0][mask.bool()] += 0.5
    return img, mask


class SceneDataset(Dataset):
    def __init__(self, n, seed, augment):
        g = torch.Generator().manual_seed(seed)
        pairs = [make_scene(g) for _ in range(n)]
        self.images = torch.stack([p[0] for p in pairs])
        self.masks = torch.stack([p[1] for p in pairs])
        self.augment = augment

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img, mask = self.images[i], self.masks[i]
        if self.augment:
            flip = random.random() < 0.5
            if flip:
                img = torch.flip(img, dims=[2])
            if flip:
                mask = torch.flip(mask, dims=[1])
        return img, mask


class TinyFCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 2, 1),
        )

    def forward(self, x):
        return self.body(x)


def mean_iou(model, loader):
    model.eval()
    inter = union = 0
    with torch.no_grad():
        for x, m in loader:
            pred = model(x).argmax(1)
            inter += ((pred == 1) & (m == 1)).sum().item()
            union += ((pred == 1) | (m == 1)).sum().item()
    model.train()
    return inter / max(union, 1)


train_loader = DataLoader(SceneDataset(800, seed=1, augment=True), batch_size=32, shuffle=True)
val_loader = DataLoader(SceneDataset(200, seed=2, augment=False), batch_size=100)

model = TinyFCN()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

for epoch in range(8):
    total = 0.0
    for x, m in train_loader:
        logits = model(x)
        loss = F.cross_entropy(logits, m)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
    print(f"epoch {epoch}  train loss {total / len(train_loader.dataset):.4f}  val IoU {mean_iou(model, val_loader):.3f}")

print(f"final val IoU {mean_iou(model, val_loader):.3f}")
