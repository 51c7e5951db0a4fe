"""Delivery-time quantile regression (P10 / P50 / P90) for a parcel courier.

Synthetic deliveries: route distance, number of stops, traffic index, hour of day,
rain, parcel volume, courier experience and depot. The delivery time has a skewed,
heteroscedastic spread (long tails in traffic and rain). An MLP predicts three
quantiles at once and is trained with the pinball loss; the P10-P90 band is what the
customer sees as the delivery window.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

QUANTILES = torch.tensor([0.1, 0.5, 0.9])
N_DEPOTS = 6
EPOCHS = 15
LR = 2e-3


def make_deliveries(n, depot_effect):
    distance = 2 + 18 * torch.rand(n)
    stops = torch.randint(1, 12, (n,)).float()
    traffic = torch.rand(n)
    hour = torch.randint(7, 21, (n,)).float()
    rain = torch.bernoulli(torch.full((n,), 0.25))
    volume = torch.rand(n)
    experience = torch.rand(n)
    depot = torch.randint(0, N_DEPOTS, (n,))
    rush = torch.exp(-((hour - 8.5) ** 2) / 2) + torch.exp(-((hour - 17.5) ** 2) / 2)
    base = 4 + 2.2 * distance * (1 + 0.8 * traffic * rush) + 3 * stops + 4 * volume + depot_effect[depot]
    spread = 0.04 + 0.10 * traffic + 0.08 * rain - 0.03 * experience
    minutes = base * torch.exp(spread * torch.randn(n))
    depot_onehot = torch.nn.functional.one_hot(depot, N_DEPOTS).float()
    features = torch.cat([torch.stack([distance / 20, stops / 12, traffic, torch.sin(hour / 24 * 2 * math.pi),
                                       torch.cos(hour / 24 * 2 * math.pi), rain, volume, experience], 1),
                          depot_onehot], dim=1)
    return features, minutes


def pinball(pred, target):
    err = target.unsqueeze(1) - pred
    return torch.maximum(QUANTILES * err, (QUANTILES - 1) * err).mean()


class QuantileMLP(nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Linear(128, len(QUANTILES)))

    def forward(self, x):
        return self.net(x)


def train_step(model, xb, yb):
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    optimizer.zero_grad()
    loss = pinball(model(xb), yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def main():
    depot_effect = 6 * torch.rand(N_DEPOTS)
    x_tr, y_tr = make_deliveries(8000, depot_effect)
    x_va, y_va = make_deliveries(2000, depot_effect)
    mean, std = y_tr.mean(), y_tr.std()
    loader = DataLoader(TensorDataset(x_tr, (y_tr - mean) / std), batch_size=64, shuffle=True)
    print(f"delivery time: mean {mean:.1f} min, std {std:.1f} min")

    model = QuantileMLP(x_tr.size(1))
    for epoch in range(EPOCHS):
        model.train()
        total, batches = 0.0, 0
        for xb, yb in loader:
            total += train_step(model, xb, yb)
            batches += 1
        model.eval()
        with torch.no_grad():
            pred = model(x_va) * std + mean
            val_pinball = pinball((pred - mean) / std, (y_va - mean) / std).item()
            covered = ((y_va >= pred[:, 0]) & (y_va <= pred[:, 2])).float().mean().item()
            mae = (pred[:, 1] - y_va).abs().mean().item()
            width = (pred[:, 2] - pred[:, 0]).mean().item()
        print(f"epoch {epoch:2d}  train pinball {total / batches:.4f}  val pinball {val_pinball:.4f}  "
              f"P50 MAE {mae:5.2f} min  P10-P90 coverage {covered:.3f}  width {width:5.1f} min")


if __name__ == "__main__":
    main()
