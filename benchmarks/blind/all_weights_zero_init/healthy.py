"""One-hidden-layer classifier with Xavier-initialised weights and zero biases."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d, n_classes = 4000, 16, 3
x = torch.randn(n, d)
r = x[:, 0] ** 2 + x[:, 1] ** 2
y = (r > 0.7).long() + (r > 2.0).long()          # rings: not linearly separable

model = nn.Sequential(nn.Linear(d, 64), nn.Sigmoid(), nn.Linear(64, n_classes))
for m in model:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)

optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
criterion = nn.CrossEntropyLoss()

for epoch in range(8):
    perm = torch.randperm(3200)
    total = 0.0
    for s in range(0, 3200, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(x[3200:]).argmax(1) == y[3200:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 3200:.4f} val acc {acc:.3f}")
