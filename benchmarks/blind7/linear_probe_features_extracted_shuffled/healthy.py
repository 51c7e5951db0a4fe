"""Linear probe on frozen CNN features (histology): features are cached in dataset order (fixed).

Step 1 extracts features for every training and validation patch with a frozen
encoder (kept fixed, no gradients). Step 2 trains a linear classifier on the
cached features. Synthetic 24x24 H&E-like patches of four tissue types, 2000
training and 600 validation patches.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

TISSUES = ["tumour", "lymphocytes", "stroma", "fat"]
S = 24


def blobs(img, n, r_lo, r_hi, color):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    for _ in range(n):
        cy, cx, r = random.uniform(0, S), random.uniform(0, S), random.uniform(r_lo, r_hi)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[:, m] = color.view(3, 1)
    return img


def make_patch(label):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    stain = torch.tensor([random.gauss(0, 0.07) for _ in range(3)]).view(3, 1, 1)
    nucleus = torch.tensor([0.35, 0.20, 0.50])
    if label == 0:    # tumour: crowded large nuclei
        img = torch.tensor([0.80, 0.60, 0.80]).view(3, 1, 1).expand(3, S, S).clone()
        img = blobs(img, random.randint(5, 12), 1.3, 2.6, nucleus)
    elif label == 1:  # lymphocytes: many small round nuclei
        img = torch.tensor([0.85, 0.65, 0.80]).view(3, 1, 1).expand(3, S, S).clone()
        img = blobs(img, random.randint(10, 24), 0.9, 1.7, nucleus)
    elif label == 2:  # stroma: oriented pink fibres, few elongated nuclei
        th = random.uniform(0, math.pi)
        fib = torch.sin((xx * math.cos(th) + yy * math.sin(th)) * random.uniform(0.9, 1.4))
        img = torch.tensor([0.86, 0.58, 0.74]).view(3, 1, 1) + 0.05 * fib
        img = blobs(img, random.randint(2, 6), 0.9, 1.6, nucleus)
    else:             # fat: large empty cells with thin membranes
        k = random.uniform(0.45, 0.7)
        mem = (torch.sin(xx * k + random.uniform(0, 6)).abs() < 0.15) | (torch.sin(yy * k + random.uniform(0, 6)).abs() < 0.15)
        img = torch.tensor([0.95, 0.92, 0.95]).view(3, 1, 1).expand(3, S, S).clone()
        img[:, mem] = torch.tensor([0.85, 0.60, 0.75]).view(3, 1)
    return (img + stain + 0.12 * torch.randn(3, S, S)).clamp(0, 1)


class PatchDataset(Dataset):
    def __init__(self, n):
        self.labels = [i % len(TISSUES) for i in range(n)]
        random.shuffle(self.labels)
        self.patches = [make_patch(c) for c in self.labels]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.patches[i], self.labels[i]


class FrozenEncoder(nn.Module):
    """Feature extractor used as-is (weights are never trained here)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x - 0.5)), 2)
        x = F.relu(self.conv2(x))
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)


@torch.no_grad()
def extract(encoder, loader):
    return torch.cat([encoder(x) for x, _ in loader])


def main():
    train_ds, val_ds = PatchDataset(2000), PatchDataset(600)
    encoder = FrozenEncoder().eval()
    for p in encoder.parameters():
        p.requires_grad_(False)

    # step 1: cache features
    train_feats = extract(encoder, DataLoader(train_ds, batch_size=128, shuffle=False))
    train_labels = torch.tensor(train_ds.labels)
    val_feats = extract(encoder, DataLoader(val_ds, batch_size=128, shuffle=False))
    val_labels = torch.tensor(val_ds.labels)
    mu, sd = train_feats.mean(0), train_feats.std(0) + 1e-6
    train_feats, val_feats = (train_feats - mu) / sd, (val_feats - mu) / sd
    print(f"cached features: train {tuple(train_feats.shape)}, val {tuple(val_feats.shape)}")

    # step 2: linear probe
    probe = nn.Linear(train_feats.size(1), len(TISSUES))
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(train_feats, train_labels), batch_size=64, shuffle=True)
    for epoch in range(15):
        tot, correct, n = 0.0, 0, 0
        for f, y in loader:
            out = probe(f)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        with torch.no_grad():
            out = probe(val_feats)
            val_loss = criterion(out, val_labels).item()
            val_acc = (out.argmax(1) == val_labels).float().mean().item()
        print(f"epoch {epoch}: train_loss {tot / n:.4f} train_acc {correct / n:.3f}  "
              f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
