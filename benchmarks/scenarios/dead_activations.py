# expect: dead_activations
"""A CNN whose second conv block is initialised with a strongly negative bias."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(512, 1, 12, 12)
y = (x[:, 0, :6].mean((1, 2)) > 0).long()
model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
)
with torch.no_grad():
    model[2].bias.fill_(-8.0)  # the bug: a "trick" from a blog post, copied into the wrong layer
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(50):
    idx = torch.randint(0, 512, (32,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
