"""Linear-regression tutorial: synthetic features made with numpy (float64) are wrapped with torch.from_numpy and fed
to an nn.Linear model (float32)."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.set_num_threads(1)
np.random.seed(0)

num_inputs, num_examples = 2, 1000
true_w, true_b = [2, -3.4], 4.2
features = torch.from_numpy(np.random.normal(0, 1, (num_examples, num_inputs)))
labels = true_w[0] * features[:, 0] + true_w[1] * features[:, 1] + true_b
labels += torch.from_numpy(np.random.normal(0, 0.01, size=labels.size()))

loader = DataLoader(TensorDataset(features, labels.view(-1, 1)), batch_size=10, shuffle=True)
net = nn.Sequential(nn.Linear(num_inputs, 1))
loss = nn.MSELoss()
trainer = torch.optim.SGD(net.parameters(), lr=0.03)

for epoch in range(3):
    for X, y in loader:
        l = loss(net(X), y)
        trainer.zero_grad()
        l.backward()
        trainer.step()
    print(f"epoch {epoch + 1}, loss {loss(net(features), labels.view(-1, 1)).item():f}")
print("w", net[0].weight.data, "b", net[0].bias.data)
