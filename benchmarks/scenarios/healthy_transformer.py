# expect: clean
"""A healthy tiny Transformer encoder classifier with warm-up and AdamW."""
import torch
from torch import nn

torch.manual_seed(3)
x = torch.randn(1024, 12, 8)
y = x[:, :, :4].mean(1).argmax(1)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.proj(x)).mean(1))


model = Encoder()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
for step in range(120):
    idx = torch.randint(0, 1024, (32,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
    sched.step()
print(f"final loss {loss.item():.3f}")
