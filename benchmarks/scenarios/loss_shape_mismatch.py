# expect: loss_shape_mismatch
"""House-price style regression: the model returns (N, 1), the targets are (N,), and MSELoss broadcasts them."""
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

warnings.filterwarnings("ignore", category=UserWarning)  # as many notebooks do
torch.manual_seed(1)
features = torch.randn(2048, 6)
price = features @ torch.tensor([1.5, -2.0, 0.7, 0.0, 3.0, 1.0]) + 0.1 * torch.randn(2048)  # shape (N,)

loader = DataLoader(TensorDataset(features, price), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
mse = nn.MSELoss()

for epoch in range(4):
    for xb, yb in loader:
        pred = model(xb)
        loss = mse(pred, yb)  # the bug: pred is (64, 1), yb is (64,): broadcast to (64, 64)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: mse {loss.item():.3f}")
