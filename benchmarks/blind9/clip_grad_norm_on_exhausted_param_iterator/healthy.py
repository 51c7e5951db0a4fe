"""Forecast a tidal river gauge six hours ahead with a GRU; the trainable parameters are kept in a list so gradient clipping sees them.

Input: the last 48 hourly readings of water level and rainfall at the gauge. The level is a mix of
tidal constituents plus the delayed response to rain showers. As in the PyTorch word-language-model
example, training uses plain SGD with a large learning rate and gradient-norm clipping at 1.0. The
rain channel goes through a fixed rescaling layer that is not trained.
"""
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

WINDOW, HORIZON = 48, 6


def make_gauge_series(length, rng):
    t = np.arange(length)
    tide = (1.2 * np.sin(2 * np.pi * t / 12.42) + 0.4 * np.sin(2 * np.pi * t / 12.0 + 1.0)
            + 0.3 * np.sin(2 * np.pi * t / 25.82))
    rain = (rng.random(length) < 0.02) * rng.gamma(2.0, 2.0, length)
    runoff = np.convolve(rain, np.exp(-np.arange(40) / 10.0))[:length] * 0.15
    level = tide + runoff + 0.05 * rng.standard_normal(length)
    return level.astype(np.float32), rain.astype(np.float32)


rng = np.random.default_rng(SEED)
level, rain = make_gauge_series(20000, rng)
starts = np.arange(0, len(level) - WINDOW - HORIZON, 5)
x = np.stack([np.stack([level[s:s + WINDOW], rain[s:s + WINDOW]], -1) for s in starts])
y = np.array([level[s + WINDOW + HORIZON - 1] for s in starts], dtype=np.float32)
n_train = int(0.8 * len(x))  # chronological split: the last 20% of the record is validation
train_ds = TensorDataset(torch.tensor(x[:n_train]), torch.tensor(y[:n_train]))
val_x, val_y = torch.tensor(x[n_train:]), torch.tensor(y[n_train:])
train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)


class GaugeForecaster(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.rain_scale = nn.Linear(1, 1)
        with torch.no_grad():
            self.rain_scale.weight.fill_(0.2)
            self.rain_scale.bias.zero_()
        self.rain_scale.requires_grad_(False)
        self.gru = nn.GRU(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, seq):
        rain_feat = self.rain_scale(seq[..., 1:2])
        h, _ = self.gru(torch.cat([seq[..., 0:1], rain_feat], dim=-1))
        return self.head(h[:, -1]).squeeze(-1)


model = GaugeForecaster()
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
criterion = nn.MSELoss()
CLIP = 1.0

EPOCHS = 12
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
for epoch in range(EPOCHS):
    model.train()
    total, count, max_norm = 0.0, 0, 0.0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, CLIP)
        optimizer.step()
        total += loss.item() * len(yb)
        count += len(yb)
    scheduler.step()
    model.eval()
    with torch.no_grad():
        pred = model(val_x)
        val_mse = criterion(pred, val_y).item()
        val_mae = (pred - val_y).abs().mean().item()
    if epoch % 3 == 2 or epoch == 0:
        print(f"epoch {epoch:2d}  train mse {total / count:.4g}  val mse {val_mse:.4g}  val mae {val_mae:.4g} m")

naive = (val_x[:, -1, 0] - val_y).abs().mean().item()
print(f"final: val mse {val_mse:.4g}  val mae {val_mae:.4g} m  (persistence forecast mae {naive:.3f} m, "
      f"level variance {val_y.var().item():.3f})")
