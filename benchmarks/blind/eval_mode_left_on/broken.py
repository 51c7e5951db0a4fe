"""MLP with BatchNorm and Dropout: model.train() is called once before the epochs, evaluate() calls model.eval(),
and training never switches back."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.set_num_threads(1)

n, d = 1200, 40
x = torch.randn(n, d) * torch.linspace(0.5, 3.0, d) + torch.linspace(-2, 2, d)
w = torch.randn(d, 4)
y = ((x - x.mean(0)) / x.std(0) @ w + 1.0 * torch.randn(n, 4)).argmax(1)
train_loader = DataLoader(TensorDataset(x[:800], y[:800]), batch_size=32, shuffle=True)
val_x, val_y = x[800:], y[800:]

model = nn.Sequential(
    nn.Linear(d, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(256, 4),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def evaluate():
    model.eval()
    with torch.no_grad():
        out = model(val_x)
        return criterion(out, val_y).item(), (out.argmax(1) == val_y).float().mean().item()


model.train()
for epoch in range(15):
    total = 0.0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    val_loss, val_acc = evaluate()
    print(f"epoch {epoch} train loss {total / len(train_loader):.4f} val loss {val_loss:.4f} val acc {val_acc:.3f}")
