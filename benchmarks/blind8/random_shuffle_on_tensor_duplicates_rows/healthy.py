"""Land-cover classification from pixel spectra, training table shuffled with a permutation index.

Synthetic Sentinel-2-like pixels: 10 reflectance bands plus NDVI and NDWI, seven
classes (water, forest, grassland, cropland, urban, bare soil, wetland) with
overlapping spectra. The training pixels come from per-class annotation polygons and
are loaded class after class into one table (features and label in the last column).
The table is shuffled once, then cut into mini-batches. Validation pixels come from a
separate, independently annotated tile.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

CLASSES = ["water", "forest", "grassland", "cropland", "urban", "bare_soil", "wetland"]
N_BANDS = 10
BATCH = 64
EPOCHS = 15

# mean reflectance per class (blue..swir2), loosely shaped like real spectra
SPECTRA = torch.tensor([
    [0.08, 0.07, 0.05, 0.04, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01],   # water
    [0.03, 0.05, 0.03, 0.10, 0.25, 0.32, 0.35, 0.36, 0.18, 0.09],   # forest
    [0.05, 0.08, 0.07, 0.14, 0.26, 0.30, 0.32, 0.33, 0.25, 0.15],   # grassland
    [0.06, 0.09, 0.09, 0.15, 0.24, 0.28, 0.30, 0.31, 0.27, 0.18],   # cropland
    [0.12, 0.13, 0.14, 0.16, 0.18, 0.19, 0.20, 0.21, 0.22, 0.20],   # urban
    [0.14, 0.17, 0.21, 0.24, 0.26, 0.28, 0.29, 0.30, 0.34, 0.30],   # bare soil
    [0.05, 0.07, 0.05, 0.09, 0.16, 0.20, 0.21, 0.22, 0.12, 0.07],   # wetland
])


def sample_pixels(label, n):
    scale = 1 + 0.2 * torch.randn(n, 1)                      # illumination
    bands = SPECTRA[label] * scale + 0.03 * torch.randn(n, N_BANDS)
    red, nir, green = bands[:, 2], bands[:, 6], bands[:, 1]
    ndvi = (nir - red) / (nir + red + 1e-3)
    ndwi = (green - nir) / (green + nir + 1e-3)
    return torch.cat([bands, ndvi[:, None], ndwi[:, None]], dim=1)


def load_polygons(per_class):
    rows = []
    for label in range(len(CLASSES)):                          # one annotation file per class
        feats = sample_pixels(label, per_class)
        rows.append(torch.cat([feats, torch.full((per_class, 1), float(label))], dim=1))
    return torch.cat(rows)


class PixelMLP(nn.Module):
    def __init__(self, n_in, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Linear(128, n_classes))

    def forward(self, x):
        return self.net(x)


def main():
    train_table = load_polygons(per_class=700)
    val_table = load_polygons(per_class=300)
    mean, std = train_table[:, :-1].mean(0), train_table[:, :-1].std(0)

    train_table = train_table[torch.randperm(len(train_table))]
    x_train, y_train = (train_table[:, :-1] - mean) / std, train_table[:, -1].long()
    x_val, y_val = (val_table[:, :-1] - mean) / std, val_table[:, -1].long()
    print(f"{len(x_train)} training pixels, {len(x_val)} validation pixels")

    model = PixelMLP(x_train.size(1), len(CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(EPOCHS):
        model.train()
        total, correct = 0.0, 0
        for start in range(0, len(x_train), BATCH):
            xb, yb = x_train[start:start + BATCH], y_train[start:start + BATCH]
            optimizer.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = F.cross_entropy(val_logits, y_val).item()
            pred = val_logits.argmax(1)
        recalls = [(pred[y_val == c] == c).float().mean().item() for c in range(len(CLASSES))]
        print(f"epoch {epoch:2d}  train loss {total / len(x_train):.4f}  train acc {correct / len(x_train):.3f}  "
              f"val loss {val_loss:.4f}  val acc {(pred == y_val).float().mean().item():.3f}  "
              f"val min recall {min(recalls):.3f}")
    print("val recall per class: " + "  ".join(f"{c} {r:.2f}" for c, r in zip(CLASSES, recalls)))


if __name__ == "__main__":
    main()
