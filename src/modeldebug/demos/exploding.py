"""A regression MLP. Bug: SGD with a learning rate ~100x too high for unnormalised targets."""

import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--lr", type=float, default=0.5)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x @ torch.randn(8, 1)) * 10 + 3

model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

for step in range(args.steps):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"final loss {loss.item()}")
