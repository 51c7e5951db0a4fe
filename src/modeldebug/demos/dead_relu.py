"""A 3-class classifier on synthetic data. Bug: the hidden layer's bias starts at -10."""

import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=150)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(512, 20)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
nn.init.constant_(model[2].bias, -10.0)  # the bug: every pre-activation of the 2nd ReLU is < 0
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()

for step in range(args.steps):
    idx = torch.randint(0, len(x), (64,))
    optimizer.zero_grad()
    loss = loss_fn(model(x[idx]), y[idx])
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step} loss {loss.item():.4f}")
print(f"final loss {loss.item():.4f}")
