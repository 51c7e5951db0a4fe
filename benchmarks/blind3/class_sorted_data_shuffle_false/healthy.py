"""Land-cover patch classifier (small CNN on 4-band 12x12 patches) trained from a dataset whose samples are stored class by class, as a folder-per-class loader produces them; FIXED: the training DataLoader is built with shuffle=True.

Every batch holds a single class and the classes arrive in the same order each
epoch, so each stretch of batches pulls the model toward one class.
"""
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_CLASSES, BANDS, SIZE = 6, 4, 12


class LandCoverPatches(Dataset):
    """Samples are appended one class folder at a time (all of class 0, then class 1, ...)."""

    def __init__(self, n_per_class, seed):
        g = torch.Generator().manual_seed(seed)
        spectra = torch.rand(N_CLASSES, BANDS, generator=torch.Generator().manual_seed(42))
        self.samples = []
        for c in range(N_CLASSES):
            texture_freq = 0.3 + 0.25 * c
            xs = torch.arange(SIZE).float()
            for _ in range(n_per_class):
                phase = 6.28 * torch.rand(1, generator=g)
                pattern = torch.sin(texture_freq * xs + phase).unsqueeze(0) * torch.cos(texture_freq * xs).unsqueeze(1)
                patch = spectra[c].view(BANDS, 1, 1) + 0.3 * pattern + 0.35 * torch.randn(BANDS, SIZE, SIZE, generator=g)
                self.samples.append((patch, c))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


train_ds = LandCoverPatches(400, seed=1)
val_ds = LandCoverPatches(100, seed=2)
train_loader = DataLoader(train_ds, batch_size=50, shuffle=True)
val_loader = DataLoader(val_ds, batch_size=600)

model = nn.Sequential(
    nn.Conv2d(BANDS, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    nn.Flatten(), nn.Linear(32, N_CLASSES),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()


def evaluate():
    model.eval()
    x, y = next(iter(val_loader))
    with torch.no_grad():
        pred = model(x).argmax(1)
    model.train()
    top_share = torch.bincount(pred, minlength=N_CLASSES).max().item() / len(pred)
    return (pred == y).float().mean().item(), top_share


for epoch in range(8):
    model.train()
    batch_losses = []
    for x, y in train_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.item())
    acc, top_share = evaluate()
    print(f"epoch {epoch}  train loss {sum(batch_losses) / len(batch_losses):.4f}  batch loss min {min(batch_losses):.4f} max {max(batch_losses):.4f}  "
          f"val acc {acc:.3f}  share of the most predicted class {top_share:.2f}")
