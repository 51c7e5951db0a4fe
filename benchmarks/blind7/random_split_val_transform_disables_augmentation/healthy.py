"""Small-data glyph recognition (CNN): train and val subsets wrap separate datasets, so augmentation stays on (fixed).

900 labelled 24x24 grayscale crops of 12 marking glyphs, captured at slightly
different positions and contrasts. The dataset is split 300/600 with
random_split; training uses random shifts and contrast jitter, validation uses
the plain normalised crops.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, random_split

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_CLASSES, S = 12, 24


def make_templates():
    temps = []
    for _ in range(N_CLASSES):
        t = (torch.rand(9, 9) < 0.45).float()
        temps.append(F.interpolate(t[None, None], size=(12, 12), mode="bilinear", align_corners=False)[0, 0])
    return temps


def capture(template):
    img = torch.zeros(S, S)
    dy, dx = random.randint(2, 10), random.randint(2, 10)
    img[dy:dy + 12, dx:dx + 12] = template
    img = img * random.uniform(0.6, 1.4) + random.uniform(-0.2, 0.2)
    return img + 0.15 * torch.randn(S, S)


class GlyphDataset(Dataset):
    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        return x.unsqueeze(0), self.labels[i]


def train_transform(x):
    x = torch.roll(x, shifts=(random.randint(-3, 3), random.randint(-3, 3)), dims=(0, 1))
    x = x * random.uniform(0.7, 1.3) + random.uniform(-0.2, 0.2)
    return (x - 0.3) / 0.5


def eval_transform(x):
    return (x - 0.3) / 0.5


class GlyphCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 6 * 6, 128)
        self.fc2 = nn.Linear(128, N_CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@torch.no_grad()
def evaluate(model, loader, criterion):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        out = model(x)
        loss += criterion(out, y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return loss / n, correct / n


def main():
    templates = make_templates()
    labels = [i % N_CLASSES for i in range(900)]
    images = [capture(templates[c]) for c in labels]

    train_idx, val_idx = random_split(range(len(labels)), [300, 600], generator=torch.Generator().manual_seed(0))
    train_ds = Subset(GlyphDataset(images, labels, transform=train_transform), list(train_idx))
    val_ds = Subset(GlyphDataset(images, labels, transform=eval_transform), list(val_idx))
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=200)

    model = GlyphCNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(24):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            out = model(x)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        val_loss, val_acc = evaluate(model, val_loader, criterion)
        if epoch % 2 == 1:
            print(f"epoch {epoch:2d}: train_loss {tot / n:.4f} train_acc {correct / n:.3f}  "
                  f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
