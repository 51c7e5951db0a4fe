"""Semantic segmentation of parts on a conveyor belt with a small U-Net.

Synthetic 32x32 RGB frames: textured belt (class 0, background), washers
(class 1, discs) and brackets (class 2, rectangles), 1-3 parts per frame.
Masks hold one class index per pixel. 480 training and 200 validation frames.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

CLASSES = ["belt", "washer", "bracket"]
H = W = 32


def make_frame():
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    belt = torch.tensor([0.35, 0.33, 0.30]).view(3, 1, 1) + 0.06 * torch.sin(xx / 1.7 + random.random() * 6)
    img = belt + 0.08 * torch.randn(3, H, W)
    mask = torch.zeros(H, W, dtype=torch.long)
    for _ in range(random.randint(1, 3)):
        cls = random.randint(1, 2)
        cy, cx = random.uniform(5, H - 5), random.uniform(5, W - 5)
        if cls == 1:
            r = random.uniform(3, 6)
            region = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            color = torch.tensor([0.75, 0.75, 0.78])
        else:
            hh, ww = random.uniform(2, 5), random.uniform(4, 8)
            region = ((yy - cy).abs() <= hh) & ((xx - cx).abs() <= ww)
            color = torch.tensor([0.70, 0.45, 0.20])
        shade = 0.8 + 0.4 * random.random()
        img[:, region] = (color * shade).view(3, 1) + 0.08 * torch.randn(3, int(region.sum()))
        mask[region] = cls
    return img, mask


class BeltDataset(Dataset):
    def __init__(self, n):
        self.items = [make_frame() for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class SmallUNet(nn.Module):
    def __init__(self, n_classes=3):
        super().__init__()
        self.enc1, self.enc2, self.mid = block(3, 12), block(12, 24), block(24, 48)
        self.up2, self.dec2 = nn.ConvTranspose2d(48, 24, 2, stride=2), block(48, 24)
        self.up1, self.dec1 = nn.ConvTranspose2d(24, 12, 2, stride=2), block(24, 12)
        self.head = nn.Conv2d(12, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


@torch.no_grad()
def evaluate(model, loader, criterion, n_classes=3):
    model.eval()
    inter, union = torch.zeros(n_classes), torch.zeros(n_classes)
    correct, total, loss, n = 0, 0, 0.0, 0
    for x, y in loader:
        out = model(x)
        loss += criterion(out, y).item() * len(y)
        n += len(y)
        pred = out.argmax(1)
        correct += (pred == y).sum().item()
        total += y.numel()
        for c in range(n_classes):
            inter[c] += ((pred == c) & (y == c)).sum()
            union[c] += ((pred == c) | (y == c)).sum()
    iou = inter / union.clamp(min=1)
    return loss / n, correct / total, iou


def main():
    train_loader = DataLoader(BeltDataset(480), batch_size=16, shuffle=True)
    val_loader = DataLoader(BeltDataset(200), batch_size=50)
    model = SmallUNet()
    criterion = nn.CrossEntropyLoss(ignore_index=0)  # 0 = unlabelled pixels
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    for epoch in range(5):
        model.train()
        tot, n = 0.0, 0
        for x, y in train_loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            n += len(y)
        val_loss, pix_acc, iou = evaluate(model, val_loader, criterion)
        ious = "  ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, iou.tolist()))
        print(f"epoch {epoch}: train_loss {tot / n:.4f}  val_loss {val_loss:.4f}  pixel_acc {pix_acc:.3f}  "
              f"mIoU {iou.mean():.3f}  IoU: {ious}")


if __name__ == "__main__":
    main()
