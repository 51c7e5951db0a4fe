# expect: double_softmax
"""An MLP classifier whose last layer is Softmax, trained with CrossEntropyLoss (which applies log_softmax itself)."""
import torch
from torch import nn

torch.manual_seed(3)
centers = torch.randn(10, 30) * 2
y_all = torch.randint(0, 10, (3000,))
x_all = centers[y_all] + torch.randn(3000, 30)

model = nn.Sequential(
    nn.Linear(30, 128), nn.ReLU(),
    nn.Linear(128, 64), nn.ReLU(),
    nn.Linear(64, 10),
    nn.Softmax(dim=1),  # the bug: probabilities go into CrossEntropyLoss
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for epoch in range(5):
    perm = torch.randperm(3000)
    for i in range(0, 3000, 100):
        idx = perm[i:i + 100]
        optimizer.zero_grad()
        loss = criterion(model(x_all[idx]), y_all[idx])
        loss.backward()
        optimizer.step()
    print("epoch", epoch, "loss", loss.item())
