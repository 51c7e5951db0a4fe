# expect: clean
"""A healthy GRU sequence classifier with gradient clipping (standard for RNNs)."""
import torch
from torch import nn

torch.manual_seed(2)
x = torch.randn(1024, 20, 6)
y = (x[:, :, 0].cumsum(1)[:, -1] > 0).long()


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 48, batch_first=True)
        self.out = nn.Linear(48, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(x)
        return self.out(h[:, -1])


model = Model()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in range(150):
    idx = torch.randint(0, 1024, (64,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
print(f"final loss {loss.item():.3f}")
