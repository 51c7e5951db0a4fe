# expect: params_not_updating
"""A two-tower model where the text tower's features go through NumPy and come back detached."""
import numpy as np
import torch
from torch import nn


class TwoTower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))
        self.text = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 16))
        self.head = nn.Linear(32, 2)

    def forward(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        t = self.text(txt)
        t = torch.from_numpy(np.tanh(t.detach().numpy()))  # the bug: a NumPy round trip cuts the graph
        return self.head(torch.cat([self.image(img), t], 1))


torch.manual_seed(0)
img, txt = torch.randn(512, 32), torch.randn(512, 20)
y = ((img[:, 0] + txt[:, 0]) > 0).long()
model = TwoTower()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(40):
    idx = torch.randint(0, 512, (64,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(img[idx], txt[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
