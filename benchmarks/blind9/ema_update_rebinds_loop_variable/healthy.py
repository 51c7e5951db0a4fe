"""Detect malicious network flows with an MLP, validated with EMA weights; the EMA update modifies the averaged parameters in place.

Each flow is described by 24 standardised statistics (packet counts and sizes, inter-arrival
times, flag ratios, port entropy, ...). The training loop keeps an exponential moving average
(EMA, decay 0.995) of the weights, and validation and the final report use the EMA weights, as
is usual for models that get deployed.
"""
import copy
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

CLASSES = ["benign", "scan", "brute_force", "dos", "exfiltration"]
N_FEAT = 24
rng = np.random.default_rng(SEED)
centres = rng.normal(0, 1.0, (len(CLASSES), N_FEAT))
warp = rng.normal(0, 1.0, (N_FEAT, N_FEAT)) / np.sqrt(N_FEAT)


def make_flows(n):
    y = rng.choice(len(CLASSES), n, p=[0.4, 0.15, 0.15, 0.15, 0.15])
    z = centres[y] + rng.normal(0, 1.0, (n, N_FEAT))
    x = np.tanh(z @ warp) * 2 + 0.3 * z
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


x_train, y_train = make_flows(8000)
x_val, y_val = make_flows(2000)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True)


class FlowClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_FEAT, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, len(CLASSES)),
        )

    def forward(self, x):
        return self.net(x)


class ModelEMA:
    def __init__(self, model, decay=0.995):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model):
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers()):
            ema_b.copy_(b)


model = FlowClassifier()
ema = ModelEMA(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
criterion = nn.CrossEntropyLoss()


def evaluate(net):
    net.eval()
    with torch.no_grad():
        logits = net(x_val)
        loss = criterion(logits, y_val).item()
        pred = logits.argmax(1)
    acc = (pred == y_val).float().mean().item()
    recalls = [(pred[y_val == c] == c).float().mean().item() for c in range(len(CLASSES))]
    return loss, acc, recalls


EPOCHS = 12
for epoch in range(EPOCHS):
    model.train()
    running, hits, seen = 0.0, 0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        optimizer.step()
        ema.update(model)
        running += loss.item() * len(yb)
        hits += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    val_loss, val_acc, _ = evaluate(ema.module)
    if epoch % 3 == 2 or epoch == 0:
        print(f"epoch {epoch:2d}  train loss {running / seen:.4f}  train acc {hits / seen:.3f}  "
              f"val loss (EMA) {val_loss:.4f}  val acc (EMA) {val_acc:.3f}")

val_loss, val_acc, recalls = evaluate(ema.module)
print(f"final (EMA weights): val loss {val_loss:.4f}  val acc {val_acc:.3f}  recall per class: "
      + " ".join(f"{c} {r:.2f}" for c, r in zip(CLASSES, recalls)))
