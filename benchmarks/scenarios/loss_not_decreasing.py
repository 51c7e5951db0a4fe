# expect: loss_not_decreasing
"""A linear classifier on labels that carry no signal: the data pipeline pairs x with shuffled y."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(4000, 20)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
y = y[torch.randperm(len(y))]  # the bug: labels shuffled independently of the inputs
model = nn.Linear(20, 3)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(150):
    idx = torch.randint(0, 4000, (128,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
