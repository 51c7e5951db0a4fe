"""Environmental sound classification from cached log-mel spectrograms with SpecAugment.

Synthetic 1-second clips of six sound classes (siren, dog bark, drilling, engine idle,
rain, chirping bird), each defined by its own spectral and temporal pattern. The
log-mel features (32 mel bands x 32 frames) are computed once, standardised and kept
in memory as one tensor. During training, __getitem__ applies SpecAugment: one
frequency mask and one time mask per clip, drawn anew every time the clip is loaded.
A small 2D CNN classifies the spectrograms.
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

N_MELS, N_FRAMES = 32, 32
CLASSES = ["siren", "dog_bark", "drilling", "engine_idle", "rain", "bird"]
EPOCHS = 12
GAIN = 0.5


def synth_logmel(label):
    f = torch.arange(N_MELS).float().view(-1, 1)
    t = torch.arange(N_FRAMES).float().view(1, -1)
    spec = 0.3 * torch.rand(N_MELS, N_FRAMES)
    if label == 0:      # siren: one band sweeping up and down
        centre = 15 + 7 * torch.sin(2 * math.pi * t / random.uniform(20, 30) + random.uniform(0, 6))
        spec += 2.0 * torch.exp(-((f - centre) ** 2) / 4)
    elif label == 1:    # dog bark: short broadband bursts
        for _ in range(random.randint(2, 3)):
            t0 = random.randint(0, N_FRAMES - 5)
            spec[4:24, t0:t0 + 4] += 1.8 * torch.rand(20, 4) + 0.6
    elif label == 2:    # drilling: steady high harmonic stack
        base = random.uniform(7, 9)
        for k in (2, 3, 4):
            spec += 1.2 * torch.exp(-((f - base * k * 0.9) ** 2) / 2) * torch.ones(1, N_FRAMES)
    elif label == 3:    # engine idle: low band, slow amplitude modulation
        am = 1 + 0.5 * torch.sin(2 * math.pi * t / random.uniform(6, 9))
        spec += 2.0 * torch.exp(-((f - random.uniform(3, 6)) ** 2) / 6) * am
    elif label == 4:    # rain: broadband noise, stronger at the top
        spec += (0.6 + 1.2 * f / N_MELS) * (0.8 + 0.4 * torch.rand(N_MELS, N_FRAMES))
    else:               # bird: short high chirps
        for _ in range(random.randint(3, 5)):
            t0, f0 = random.randint(0, N_FRAMES - 3), random.randint(20, 28)
            for dt in range(3):
                spec[f0 + dt, t0 + dt] += 2.5
                spec[f0 + dt + 1, t0 + dt] += 1.2
    return GAIN * spec + 0.6 * torch.randn(N_MELS, N_FRAMES)


class MelClips(Dataset):
    def __init__(self, features, labels, augment=False, max_f=5, max_t=6, n_masks=2):
        self.features = features          # (N, N_MELS, N_FRAMES), cached once
        self.labels = labels
        self.augment = augment
        self.max_f, self.max_t, self.n_masks = max_f, max_t, n_masks

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        spec = self.features[idx]
        if self.augment:
            for _ in range(self.n_masks):
                fw, tw = random.randint(0, self.max_f), random.randint(0, self.max_t)
                f0, t0 = random.randint(0, N_MELS - fw), random.randint(0, N_FRAMES - tw)
                spec[f0:f0 + fw, :] = 0.0       # features are standardised: 0 is the mean
                spec[:, t0:t0 + tw] = 0.0
        return spec.unsqueeze(0), self.labels[idx]


class SoundCNN(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(12, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(32, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


def build(n):
    labels = torch.randint(0, len(CLASSES), (n,))
    feats = torch.stack([synth_logmel(int(y)) for y in labels])
    return feats, labels


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
    train_x, train_y = build(900)
    val_x, val_y = build(400)
    mean, std = train_x.mean(), train_x.std()
    train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    train_loader = DataLoader(MelClips(train_x, train_y, augment=True), batch_size=32, shuffle=True)
    val_loader = DataLoader(MelClips(val_x, val_y), batch_size=200)

    model = SoundCNN(len(CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(EPOCHS):
        model.train()
        total, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        val_loss, val_acc = evaluate(model, val_loader)
        print(f"epoch {epoch:2d}  train loss {total / n:.4f}  train acc {correct / n:.3f}  "
              f"val loss {val_loss:.4f}  val acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
