# expect: nonfinite
"""Cosine-similarity features normalised by hand: a zero row divides by zero."""
import torch
from torch import nn


class Scorer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h / h.norm(dim=1, keepdim=True)  # the bug: a row of all-zero ReLU outputs gives 0/0
        return self.head(h)


torch.manual_seed(0)
x = torch.randn(256, 16)
x[::17] = -torch.rand(16) * 5 - 5  # some inputs push every ReLU unit to zero
y = torch.randn(256, 1)
model = Scorer()
nn.init.constant_(model.embed[0].bias, -0.5)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(40):
    idx = torch.randint(0, 256, (32,))
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
