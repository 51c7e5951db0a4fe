# expect: vanishing_gradients
"""A deep fully connected network with sigmoid activations everywhere."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(1024, 24)
y = (x[:, :3].sum(1) > 0).long()
layers = [nn.Linear(24, 64), nn.Sigmoid()]
for _ in range(12):
    layers += [nn.Linear(64, 64), nn.Sigmoid()]  # the bug: 13 sigmoid layers, no normalisation
model = nn.Sequential(*layers, nn.Linear(64, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for step in range(60):
    idx = torch.randint(0, 1024, (64,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
