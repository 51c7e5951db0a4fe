"""Tabular classifier whose optimizer.zero_grad() sits at the top of the epoch loop instead of the batch loop."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.set_num_threads(1)

n = 3000
x = torch.randn(n, 20)
w = torch.randn(20, 3)
y = (x @ w + 0.5 * torch.randn(n, 3)).argmax(1)
train = DataLoader(TensorDataset(x[:2400], y[:2400]), batch_size=64, shuffle=True)
val_x, val_y = x[2400:], y[2400:]

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

for epoch in range(10):
    model.train()
    optimizer.zero_grad()
    total = 0.0
    for xb, yb in train:
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    model.eval()
    with torch.no_grad():
        acc = (model(val_x).argmax(1) == val_y).float().mean().item()
    print(f"epoch {epoch} train loss {total / len(train):.4f} val acc {acc:.3f}")
