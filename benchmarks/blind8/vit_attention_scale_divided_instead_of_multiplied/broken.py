"""Tiny Vision Transformer for defect classification on 12x12 wafer-inspection crops.

Every crop is a noisy background with one small defect (scratch, particle, ring or
cross) at a random position. The ViT cuts the crop into 4x4 patches, adds a learned
class token and positional embeddings, runs two pre-norm Transformer blocks, and
classifies from the class token. The class token has to find the patch with the
defect, so the model relies on its attention.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

IMG, PATCH = 12, 4
DIM, HEADS, DEPTH = 64, 1, 2
CLASSES = ["scratch", "particle", "ring", "cross"]
EPOCHS = 8


def draw_defect(kind):
    d = torch.zeros(5, 5)
    if kind == 0:
        for i in range(5):
            d[i, min(4, i + random.randint(0, 1))] = 1.0
    elif kind == 1:
        d[1:4, 1:4] = 0.6
        d[2, 2] = 1.0
    elif kind == 2:
        d[0, 1:4] = d[4, 1:4] = d[1:4, 0] = d[1:4, 4] = 1.0
    else:
        d[2, :] = 1.0
        d[:, 2] = 1.0
    return d


def make_crops(n):
    images = 0.2 * torch.randn(n, 1, IMG, IMG)
    labels = torch.randint(0, len(CLASSES), (n,))
    for i in range(n):
        y, x = random.randint(0, IMG - 5), random.randint(0, IMG - 5)
        images[i, 0, y:y + 5, x:x + 5] += random.uniform(0.8, 1.2) * draw_defect(int(labels[i]))
    return images, labels


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) / self.scale
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        n_patches = (IMG // PATCH) ** 2
        self.patch_embed = nn.Conv2d(1, DIM, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, DIM))
        self.blocks = nn.Sequential(*[Block(DIM, HEADS) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, len(CLASSES))

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1) + self.pos_embed
        x = self.blocks(x)
        return self.head(self.norm(x[:, 0]))


def evaluate(model, loader):
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
    return total / n, correct / n


def main():
    train_loader = DataLoader(TensorDataset(*make_crops(3000)), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(*make_crops(800)), batch_size=250)
    model = TinyViT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * len(train_loader))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * len(train_loader))
    for epoch in range(EPOCHS):
        model.train()
        total, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        val_loss, val_acc = evaluate(model, val_loader)
        print(f"epoch {epoch}  train loss {total / n:.4f}  train acc {correct / n:.3f}  "
              f"val loss {val_loss:.4f}  val acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
