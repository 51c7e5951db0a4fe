# expect: data_leakage
"""Train/validation split drawn with two independent permutations: most validation samples are also trained on."""
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

torch.manual_seed(0)
x = torch.randn(1000, 20)
y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
dataset = TensorDataset(x, y)

train_idx = torch.randperm(len(dataset))[:800]
val_idx = torch.randperm(len(dataset))[:200]  # the bug: a second permutation, not the remaining 200
train_loader = DataLoader(Subset(dataset, train_idx.tolist()), batch_size=32, shuffle=True)
val_loader = DataLoader(Subset(dataset, val_idx.tolist()), batch_size=100)

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(5):
    model.train()
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in val_loader:
            correct += (model(xb).argmax(1) == yb).sum().item()
    print(f"epoch {epoch}: val accuracy {correct / len(val_idx):.3f}")
