# expect: clean
"""A healthy small CNN with BatchNorm on synthetic 3x16x16 images, normalised, with validation."""
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(1)
n = 1024
x = torch.rand(n, 3, 16, 16)
y = (x[:, 0, :8].mean((1, 2)) > x[:, 2, 8:].mean((1, 2))).long()
mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
x = (x - mean) / std


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.c2, self.b2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.relu(self.b2(self.c2(x)))
        return self.fc(x.mean((2, 3)))


model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(3):
    model.train()
    perm = torch.randperm(800)
    for i in range(0, 800, 32):
        idx = perm[i:i + 32]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(x[800:]), y[800:]).item()
    print(f"epoch {epoch} loss {loss.item():.3f} val {val:.3f}")
