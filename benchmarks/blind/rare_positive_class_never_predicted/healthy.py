"""Binary MLP on tabular data where 8% of the samples are positive; BCEWithLogitsLoss weighted with
pos_weight = negatives / positives."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d = 6000, 20
y = (torch.rand(n) < 0.08).float()
x = torch.randn(n, d)
x[:, :3] += 1.0 * y.unsqueeze(1)                   # positives are shifted, but overlap a lot

model = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 1))
pos_weight = (y[:4800] == 0).sum() / (y[:4800] == 1).sum()
criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for epoch in range(6):
    perm = torch.randperm(4800)
    total = 0.0
    for s in range(0, 4800, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(x[idx]).squeeze(1), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        pred = (model(x[4800:]).squeeze(1) > 0).float()
        truth = y[4800:]
        acc = (pred == truth).float().mean().item()
        recall = (pred * truth).sum().item() / truth.sum().item()
    print(f"epoch {epoch} loss {total / 4800:.4f} val acc {acc:.3f} positive recall {recall:.3f}")
