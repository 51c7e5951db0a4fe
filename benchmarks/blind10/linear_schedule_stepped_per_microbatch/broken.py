"""Battery state-of-health regressor whose warmup/linear-decay schedule is stepped on every micro-batch under gradient accumulation.

Lithium-ion cells: the voltage curve of one constant-current charge (64 points) and the cell
temperature predict the state of health (capacity relative to new). An MLP is trained with AdamW,
gradient accumulation over 4 micro-batches of 16, and a linear warmup / linear decay schedule
whose length is counted in optimizer steps (EPOCHS * len(loader) // ACCUM). scheduler.step() is
called on every micro-batch, so the schedule runs 4 times too fast: the learning rate reaches 0
after a quarter of the training and stays there.
"""
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

rng = np.random.default_rng(SEED)


def make_cells(n):
    soh = rng.uniform(0.7, 1.0, n)
    temp = rng.uniform(10, 40, n)
    q = np.linspace(0, 1, 64)[None, :]
    r = 0.05 + 0.25 * (1 - soh)[:, None]  # internal resistance grows with ageing
    v = 3.4 + 0.7 * (q / soh[:, None]) ** 0.8 + r * 1.2 - 0.004 * (temp[:, None] - 25)
    v += 0.05 * np.sin(6 * q / soh[:, None]) + rng.normal(0, 0.004, v.shape)
    X = np.concatenate([np.clip(v, 3.0, 4.3), (temp[:, None] - 25) / 10], 1)
    return X.astype(np.float32), soh.astype(np.float32)


Xtr, ytr = make_cells(6000)
Xva, yva = make_cells(1500)
mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
Xtr, Xva = (Xtr - mu) / sd, (Xva - mu) / sd
ymu, ysd = ytr.mean(), ytr.std()
loader = DataLoader(TensorDataset(torch.tensor(Xtr), torch.tensor((ytr - ymu) / ysd)), batch_size=16, shuffle=True)
Xva_t, yva_t = torch.tensor(Xva), torch.tensor(yva)

model = nn.Sequential(nn.Linear(65, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 1))
EPOCHS, ACCUM, LR = 12, 4, 3e-4
opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
total_steps = EPOCHS * len(loader) // ACCUM
warmup = int(0.05 * total_steps)


def lr_lambda(step):
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / (total_steps - warmup))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
print(f"{len(loader)} micro-batches per epoch, accumulation {ACCUM}, schedule length {total_steps} optimizer steps")
for epoch in range(EPOCHS):
    model.train()
    tot, n = 0.0, 0
    opt.zero_grad()
    for i, (x, y) in enumerate(loader):
        loss = F.mse_loss(model(x).squeeze(1), y)
        (loss / ACCUM).backward()
        if (i + 1) % ACCUM == 0:
            opt.step()
            opt.zero_grad()
        sched.step()
        tot += loss.item() * len(x)
        n += len(x)
    model.eval()
    with torch.no_grad():
        pred = model(Xva_t).squeeze(1) * ysd + ymu
        rmse = torch.sqrt(F.mse_loss(pred, yva_t)).item()
        mae = (pred - yva_t).abs().mean().item()
    print(f"epoch {epoch}: lr {opt.param_groups[0]['lr']:.2e}, train mse (scaled) {tot / n:.4f}, "
          f"val RMSE {rmse * 100:.2f} % SOH, val MAE {mae * 100:.2f} % SOH")
