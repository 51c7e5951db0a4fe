# expect: missing_zero_grad
"""Tabular regression with an MLP, SGD with momentum and a DataLoader.

The optimizer never clears the gradients, so every step adds onto the sum of all previous ones.
"""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(7)
n, d = 1536, 16
X = torch.randn(n, d)
w_true = torch.randn(d, 1)
y = X @ w_true + 0.3 * torch.sin(3 * X[:, :1]) + 0.1 * torch.randn(n, 1)
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Linear(d, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(3):
    model.train()
    running = 0.0
    for xb, yb in loader:
        pred = model(xb)
        loss = criterion(pred, yb)
        loss.backward()
        optimizer.step()  # the bug: no optimizer.zero_grad() anywhere in the loop
        running += loss.item()
    print(f"epoch {epoch}: train mse {running / len(loader):.4f}")
