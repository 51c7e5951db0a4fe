# expect: overfitting
"""A wide MLP trained for many epochs on 150 noisy samples, with a validation loop each epoch."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)


def make(n: int) -> TensorDataset:
    x = torch.randn(n, 30)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    flip = torch.rand(n) < 0.25
    y[flip] = 1 - y[flip]  # noisy labels, as real data has
    return TensorDataset(x, y)


train_dl = DataLoader(make(150), batch_size=16, shuffle=True)  # the bug: 150 samples for 100k parameters, 80 epochs
val_dl = DataLoader(make(500), batch_size=250)
model = nn.Sequential(nn.Linear(30, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(80):
    model.train()
    for xb, yb in train_dl:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        val = sum(criterion(model(xb), yb).item() for xb, yb in val_dl) / len(val_dl)
    if epoch % 10 == 0:
        print(f"epoch {epoch}: train {loss.item():.3f} val {val:.3f}")
