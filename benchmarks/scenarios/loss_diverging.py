# expect: loss_diverging
"""Manual SGD written by hand, with the sign of the update flipped: gradient ascent."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(512, 10)
y = x @ torch.randn(10, 1) + 0.1 * torch.randn(512, 1)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
lr = 0.01
for step in range(80):
    idx = torch.randint(0, 512, (64,))
    loss = ((model(x[idx]) - y[idx]) ** 2).mean()
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p += lr * p.grad  # the bug: should be p -= lr * p.grad
print(loss.item())
