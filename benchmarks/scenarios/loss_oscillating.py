# expect: loss_oscillating
"""Two data sources with different decision rules, concatenated and read in order every epoch."""
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

torch.manual_seed(0)
x_2019 = torch.randn(1000, 8)
y_2019 = (x_2019[:, 0] + x_2019[:, 1] > 0).long()
x_2020 = torch.randn(1000, 8)
x_2020[:, 2] += 1.0  # the newer source: shifted inputs, and the rule changed
y_2020 = (x_2020[:, 0] - x_2020[:, 1] > 0).long()
train_set = ConcatDataset([TensorDataset(x_2019, y_2019), TensorDataset(x_2020, y_2020)])
loader = DataLoader(train_set, batch_size=50)  # the bug: no shuffle=True, so whole epochs alternate between sources

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(8):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
    print(epoch, round(loss.item(), 3))
