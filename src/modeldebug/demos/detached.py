"""An encoder + head classifier. Bug: the encoder's output is detached, so the encoder never learns."""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).detach()  # the bug: no gradient reaches the encoder
        return self.head(h)


torch.manual_seed(0)
x = torch.randn(256, 16)
y = x[:, :4].argmax(1)
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(80):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
print(f"final loss {loss.item():.4f}")
