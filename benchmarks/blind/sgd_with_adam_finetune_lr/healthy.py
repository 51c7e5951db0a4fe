"""Fine-tuning a small classifier with plain SGD at lr=5e-2."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d, n_classes = 5000, 40, 4
x = torch.randn(n, d)
w = torch.randn(d, n_classes)
y = (x @ w + 0.5 * torch.randn(n, n_classes)).argmax(1)

model = nn.Sequential(nn.Linear(d, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, n_classes))
optimizer = torch.optim.SGD(model.parameters(), lr=5e-2)
criterion = nn.CrossEntropyLoss()

for epoch in range(5):
    perm = torch.randperm(4000)
    total = 0.0
    for s in range(0, 4000, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(x[4000:]).argmax(1) == y[4000:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 4000:.4f} val acc {acc:.3f}")
