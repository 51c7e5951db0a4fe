"""GRU forecaster for a sensor signal with occasional glitch readings, trained with SGD + momentum and gradient clipping; FIXED: torch.nn.utils.clip_grad_norm_ is called between loss.backward() and optimizer.step().

Clipping was added because a few training windows end in glitch readings
(spikes of +-40) whose squared error produces gradient spikes. The clipping
line sits after the step, so the update uses the raw gradient and the clipped
values are thrown away by the next zero_grad.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

WINDOW = 30
MAX_NORM = 1.0


def make_windows(n, seed, glitch_rate):
    g = torch.Generator().manual_seed(seed)
    t0 = torch.rand(n, 1, generator=g) * 100
    freq = 0.2 + 0.3 * torch.rand(n, 1, generator=g)
    t = t0 + torch.arange(WINDOW + 1).float()
    series = torch.sin(freq * t) + 0.5 * torch.sin(0.37 * freq * t + 1.0) + 0.05 * torch.randn(n, WINDOW + 1, generator=g)
    x, y = series[:, :WINDOW].unsqueeze(-1), series[:, WINDOW:]
    glitch = torch.rand(n, generator=g) < glitch_rate
    y[glitch] += 40.0 * torch.sign(torch.randn(int(glitch.sum()), 1, generator=g))
    return x, y


x_tr, y_tr = make_windows(6000, seed=1, glitch_rate=0.01)
x_va, y_va = make_windows(1000, seed=2, glitch_rate=0.0)
loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 64, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


model = Forecaster()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.MSELoss()


def validate():
    model.eval()
    with torch.no_grad():
        mse = criterion(model(x_va), y_va).item()
    model.train()
    return mse


for epoch in range(5):
    model.train()
    running, max_norm_seen = 0.0, 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        optimizer.step()
        running += loss.item()
        max_norm_seen = max(max_norm_seen, total_norm.item())
    print(f"epoch {epoch}  train loss {running / len(loader):.4f}  max grad norm {max_norm_seen:.1f}  "
          f"val mse {validate():.4f}  (val target var {y_va.var().item():.3f})")
