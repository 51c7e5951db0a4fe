# expect: runtime_error
"""BatchNorm trained with a last batch of size one (drop_last forgotten)."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
ds = TensorDataset(torch.randn(65, 4), torch.randn(65, 1))
loader = DataLoader(ds, batch_size=16)  # the bug: 65 = 4*16 + 1, and drop_last=False
model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for xb, yb in loader:
    opt.zero_grad()
    nn.functional.mse_loss(model(xb), yb).backward()
    opt.step()
