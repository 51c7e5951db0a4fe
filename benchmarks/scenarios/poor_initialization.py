# expect: poor_initialization
"""A 10-class MLP whose weights are re-initialised with a hand-written init function."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(3000, 64)
y = (x[:, :10] * torch.linspace(0.5, 2.0, 10)).argmax(1)


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                  nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, 10)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=1.0)  # the bug: std 1 regardless of fan-in
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


model = Classifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(60):
    idx = torch.randint(0, 3000, (128,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
