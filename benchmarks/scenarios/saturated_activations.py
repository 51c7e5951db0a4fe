# expect: saturated_activations
"""An old-style sigmoid network initialised with uniform(-1, 1) weights, fitting a smooth function."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.rand(2048, 16) * 2 - 1
y = torch.cos(2 * x[:, :4]).sum(1, keepdim=True) / 4

model = nn.Sequential(nn.Linear(16, 256), nn.Sigmoid(), nn.Linear(256, 256), nn.Sigmoid(), nn.Linear(256, 1))
for layer in model:
    if isinstance(layer, nn.Linear):
        nn.init.uniform_(layer.weight, -1.0, 1.0)  # the bug: no fan-in scaling, pre-activations of std ~9
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(100):
    idx = torch.randint(0, 2048, (64,))
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
