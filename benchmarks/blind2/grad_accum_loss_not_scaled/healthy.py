"""House-price-style MLP regression with gradient accumulation over 8 micro-batches; FIXED: each micro-batch loss is divided by ACCUM_STEPS before backward().

The learning rate was tuned earlier for a single batch of 256; the author then
split it into 8 micro-batches of 32 to save memory.
"""
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_FEAT = 12
ACCUM_STEPS = 8


class HousingDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, N_FEAT, generator=g)
        w = torch.linspace(-1.0, 1.0, N_FEAT).unsqueeze(1)
        self.y = (self.x @ w + 0.5 * torch.relu(self.x[:, :1]) + 0.1 * torch.randn(n, 1, generator=g))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


train_loader = DataLoader(HousingDataset(8192, seed=1), batch_size=32, shuffle=True)
val_ds = HousingDataset(1000, seed=2)

model = nn.Sequential(nn.Linear(N_FEAT, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)
criterion = nn.MSELoss()


def validate():
    model.eval()
    with torch.no_grad():
        mse = criterion(model(val_ds.x), val_ds.y).item()
    model.train()
    return mse


optimizer.zero_grad()
for epoch in range(4):
    running = 0.0
    for i, (x, y) in enumerate(train_loader):
        loss = criterion(model(x), y)
        (loss / ACCUM_STEPS).backward()
        running += loss.item()
        if (i + 1) % ACCUM_STEPS == 0:
            optimizer.step()
            optimizer.zero_grad()
    print(f"epoch {epoch}  train loss {running / len(train_loader):.4f}  val mse {validate():.4f}  (target var {val_ds.y.var().item():.3f})")

print(f"final val mse {validate():.4f}")
