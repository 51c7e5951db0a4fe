"""Multi-label classifier with a hand-written binary cross-entropy computed with logsigmoid,
which stays finite for confident predictions."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d, n_labels = 3000, 32, 6
x = torch.randn(n, d)
y = ((x[:, :n_labels] * 3 + 0.1 * torch.randn(n, n_labels)) > 0).float()     # nearly separable labels


def bce(logits, target):
    return -(target * nn.functional.logsigmoid(logits) + (1 - target) * nn.functional.logsigmoid(-logits)).mean()


model = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, n_labels))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

for epoch in range(6):
    perm = torch.randperm(2400)
    total = 0.0
    for s in range(0, 2400, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = bce(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = ((model(x[2400:]) > 0).float() == y[2400:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 2400:.4f} label acc {acc:.3f}")
