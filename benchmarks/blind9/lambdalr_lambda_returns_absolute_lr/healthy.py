"""Classify six gases from a 16-sensor electronic-nose array with an MLP; the LambdaLR lambda returns the decay factor, not the learning rate.

Each sample has 8 features per sensor (steady-state resistance change, rise and decay slopes at
three time constants, ...), 128 features in all, already standardised. Training follows the
recipe common in domain-adaptation code: SGD with momentum and the "inverse decay" schedule
lr_t = lr * (1 + gamma * t) ** (-decay), implemented with LambdaLR and stepped every iteration.
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

N_GAS, N_SENSORS, N_FEAT = 6, 16, 8
rng = np.random.default_rng(SEED)

# each gas has a response signature over the sensors; concentration scales it non-linearly
signature = rng.normal(0, 1, (1, N_SENSORS, N_FEAT)) + rng.normal(0, 1, (N_GAS, N_SENSORS, N_FEAT))
mixing = rng.normal(0, 0.4, (N_SENSORS * N_FEAT, N_SENSORS * N_FEAT)) / np.sqrt(N_SENSORS * N_FEAT)


def make_samples(n):
    gas = rng.integers(0, N_GAS, n)
    conc = rng.uniform(0.2, 1.0, n)
    resp = signature[gas] * np.log1p(5 * conc)[:, None, None]
    resp = resp.reshape(n, -1)
    resp = np.tanh(resp + resp @ mixing) + rng.normal(0, 1.5, resp.shape)
    return resp.astype(np.float32), gas


x_tr, y_tr = make_samples(6000)
x_va, y_va = make_samples(2000)
mu, sd = x_tr.mean(0), x_tr.std(0)
x_tr, x_va = (x_tr - mu) / sd, (x_va - mu) / sd
train_loader = DataLoader(TensorDataset(torch.tensor(x_tr), torch.tensor(y_tr)), batch_size=64, shuffle=True)
val_x, val_y = torch.tensor(x_va), torch.tensor(y_va)


class ENoseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_SENSORS * N_FEAT, 128), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, N_GAS),
        )

    def forward(self, x):
        return self.net(x)


LR, LR_GAMMA, LR_DECAY = 0.01, 0.001, 0.75
model = ENoseNet()
optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: (1.0 + LR_GAMMA * float(step)) ** (-LR_DECAY))
criterion = nn.CrossEntropyLoss()

EPOCHS = 15
for epoch in range(EPOCHS):
    model.train()
    total, correct, seen = 0.0, 0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    model.eval()
    with torch.no_grad():
        val_logits = model(val_x)
        val_loss = criterion(val_logits, val_y).item()
        val_acc = (val_logits.argmax(1) == val_y).float().mean().item()
    if epoch % 3 == 2 or epoch == 0:
        print(f"epoch {epoch:2d}  lr {scheduler.get_last_lr()[0]:.2e}  train loss {total / seen:.4f}  "
              f"train acc {correct / seen:.3f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")

print(f"final: val loss {val_loss:.4f}  val acc {val_acc:.3f}")
