"""Heat-exchanger surrogate with a custom Swish whose backward applies the chain rule.

Eight design parameters (flow rates, inlet temperatures, fin pitch, tube diameter,
length, fouling factor) map to the outlet temperature through a smooth nonlinear
function standing in for the expensive simulator. A 3-layer MLP regresses the
standardised outlet temperature. To save activation memory, Swish is implemented as a
custom autograd Function that keeps only its input for the backward pass
(the "memory-efficient Swish" pattern).
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

EPOCHS = 10


class SwishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        sig = torch.sigmoid(x)
        return grad_output * sig * (1 + x * (1 - sig))


class MemoryEfficientSwish(nn.Module):
    def forward(self, x):
        return SwishFunction.apply(x)


class Surrogate(nn.Module):
    def __init__(self, n_in=8, hidden=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), MemoryEfficientSwish(),
            nn.Linear(hidden, hidden), MemoryEfficientSwish(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


def simulator(p):
    flow_h, flow_c, t_h, t_c, pitch, diam, length, fouling = p.unbind(1)
    ua = F.softplus(1.0 + 0.8 * length + 0.4 * diam - 0.3 * pitch) / (1 + 0.3 * F.softplus(fouling))
    c_hot, c_cold = F.softplus(flow_h) + 0.2, F.softplus(flow_c) + 0.2
    c_min, c_max = torch.minimum(c_hot, c_cold), torch.maximum(c_hot, c_cold)
    ntu, ratio = ua / c_min, c_min / c_max
    decay = torch.exp(-ntu * (1 - ratio))
    eff = (1 - decay) / (1 - ratio * decay + 1e-6)
    t_hot_in, t_cold_in = 80 + 10 * t_h, 20 + 5 * t_c
    return t_hot_in - eff * c_min / c_hot * (t_hot_in - t_cold_in)


def evaluate(model, loader):
    model.eval()
    sq, n = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            sq += ((model(x) - y) ** 2).sum().item()
            n += len(y)
    return sq / n


def main():
    x_train, x_val = torch.randn(6000, 8), torch.randn(1500, 8)
    y_train, y_val = simulator(x_train), simulator(x_val)
    mean, std = y_train.mean(), y_train.std()
    y_train, y_val = (y_train - mean) / std, (y_val - mean) / std
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=500)

    model = Surrogate()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.MSELoss()
    for epoch in range(EPOCHS):
        model.train()
        total, n = 0.0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            n += len(y)
        val_mse = evaluate(model, val_loader)
        print(f"epoch {epoch:2d}  train MSE {total / n:.4g}  val MSE {val_mse:.4g}  "
              f"val R2 {1 - val_mse / y_val.var().item():.4f}  val RMSE {math.sqrt(val_mse) * std:.3f} K")


if __name__ == "__main__":
    main()
