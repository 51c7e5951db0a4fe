# expect: lr_too_high
"""A small CNN on 16x16 images, trained with Adam at a learning rate meant for SGD."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
n = 1024
x = torch.randn(n, 1, 16, 16)
y = (x[:, 0, :8].mean((1, 2)) > x[:, 0, 8:].mean((1, 2))).long() + 2 * (x[:, 0, :, :8].mean((1, 2)) > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 4),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.1)  # the bug: an SGD-sized learning rate given to Adam
criterion = nn.CrossEntropyLoss()

for epoch in range(5):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
