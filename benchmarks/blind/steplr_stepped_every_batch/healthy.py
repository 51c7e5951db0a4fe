"""Classifier with StepLR(step_size=epochs // 2, gamma=0.1) meant as a per-epoch schedule, with scheduler.step() called
once at the end of each epoch."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.set_num_threads(1)

n, d = 4000, 24
x = torch.randn(n, d)
y = (torch.sin(x[:, 0] * 1.5) + x[:, 1] * x[:, 2] > 0).long() + (x[:, 3] > 1).long()
loader = DataLoader(TensorDataset(x[:3200], y[:3200]), batch_size=64, shuffle=True)

epochs = 10
model = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=epochs // 2, gamma=0.1)
criterion = nn.CrossEntropyLoss()

for epoch in range(epochs):
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    scheduler.step()
    with torch.no_grad():
        acc = (model(x[3200:]).argmax(1) == y[3200:]).float().mean().item()
    print(f"epoch {epoch} loss {total / len(loader):.4f} val acc {acc:.3f} lr {optimizer.param_groups[0]['lr']:.2e}")
