"""Convolutional autoencoder on synthetic 16x16 grey images; FIXED: inputs stay in [0, 1] (no mean/std standardization), matching the decoder's final nn.Sigmoid().

The reconstruction target is the (standardized) input, which is mostly
negative for background pixels; a sigmoid cannot produce negative values.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)


def make_images(n, seed):
    """Blurry blobs and bars on a dark background, pixel values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    cy = torch.rand(n, 1, 1, generator=g) * 10 + 3
    cx = torch.rand(n, 1, 1, generator=g) * 10 + 3
    r = torch.rand(n, 1, 1, generator=g) * 2 + 1.5
    blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
    bar_row = torch.randint(0, 16, (n, 1, 1), generator=g)
    bar = (yy == bar_row).float() * torch.rand(n, 1, 1, generator=g)
    img = torch.clamp(blob + 0.6 * bar + 0.03 * torch.rand(n, 16, 16, generator=g), 0, 1)
    return img.unsqueeze(1)


train_imgs = make_images(2000, seed=1)
val_imgs = make_images(500, seed=2)

# pixels are already in [0, 1], the range of the decoder's sigmoid output


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),     # 8x8
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),    # 4x4
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),   # 8x8
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),               # 16x16
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


loader = DataLoader(TensorDataset(train_imgs), batch_size=64, shuffle=True)
model = ConvAutoencoder()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.MSELoss()


def val_loss():
    model.eval()
    with torch.no_grad():
        out = model(val_imgs)
    model.train()
    # report in units of the data variance so runs are comparable
    return (criterion(out, val_imgs) / val_imgs.var()).item()


for epoch in range(8):
    total = 0.0
    for (x,) in loader:
        recon = model(x)
        loss = criterion(recon, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
    print(f"epoch {epoch}  train mse {total / len(train_imgs):.4f}  val mse / var {val_loss():.4f}")

print(f"final val mse / var {val_loss():.4f}")
