"""Remaining-useful-life regression for turbofan engines from sensor snapshots (MLP, bf16).

CMAPSS-style synthetic data: 21 noisy sensor channels and 3 operating settings
that drift with a hidden wear level; the target is the remaining useful life in
cycles (capped at 125, scaled to [0, 1] for training). The model runs in
bfloat16 to halve memory, as on the accelerator box it will be trained on.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_SENSORS, N_SETTINGS, RUL_CAP = 21, 3, 125.0


def make_split(n, mix):
    wear = torch.rand(n)                                   # 0 = new, 1 = end of life
    settings = torch.randn(n, N_SETTINGS)
    base = wear.unsqueeze(1) @ mix[0] + torch.tanh(settings @ mix[1])
    curve = torch.exp(2.0 * wear).unsqueeze(1) * mix[2] * 0.2
    sensors = base + curve + 0.15 * torch.randn(n, N_SENSORS)
    x = torch.cat([sensors, settings], dim=1)
    rul = torch.clamp(350.0 * (1.0 - wear) ** 1.5, max=RUL_CAP)
    return x, rul / RUL_CAP


class RULNet(nn.Module):
    def __init__(self, d_in=N_SENSORS + N_SETTINGS, hidden=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def predict(model, x):
    return model(x.to(torch.bfloat16)).float()


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    se, n = 0.0, 0
    for x, y in loader:
        se += ((predict(model, x) - y) ** 2).sum().item()
        n += len(y)
    return se / n, math.sqrt(se / n) * RUL_CAP


def main():
    mix = (torch.randn(1, N_SENSORS), torch.randn(N_SETTINGS, N_SENSORS), torch.randn(1, N_SENSORS))
    x_tr, y_tr = make_split(8000, mix)
    x_va, y_va = make_split(2000, mix)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    x_tr, x_va = (x_tr - mu) / sd, (x_va - mu) / sd
    train_loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(x_va, y_va), batch_size=500)

    model = RULNet().to(torch.bfloat16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = nn.MSELoss()

    for epoch in range(8):
        model.train()
        tot, n = 0.0, 0
        for x, y in train_loader:
            loss = criterion(predict(model, x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            n += len(y)
        val_mse, val_rmse = evaluate(model, val_loader)
        print(f"epoch {epoch}: train_mse {tot / n:.4f}  val_mse {val_mse:.4f}  val_RMSE {val_rmse:.1f} cycles")


if __name__ == "__main__":
    main()
