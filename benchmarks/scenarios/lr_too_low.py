# expect: lr_too_low
"""Tabular regression with an MLP and SGD with momentum, at a learning rate 10000x too small."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
features = torch.randn(2000, 12)
price = (features[:, :4] @ torch.tensor([1.5, -2.0, 0.7, 1.0])).unsqueeze(1) + 0.1 * torch.randn(2000, 1)
loader = DataLoader(TensorDataset(features, price), batch_size=100, shuffle=True)

net = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)  # the bug: 1e-6 where 1e-2 is typical

for epoch in range(6):
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item()
    print(f"epoch {epoch}: mse {total / len(loader):.4f}")
