"""Regression MLP with ReLU trained by SGD with momentum at lr=0.01."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d = 4000, 10
x = torch.randn(n, d)
y = (torch.sin(x[:, 0] * 2) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3]).unsqueeze(1)

model = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(8):
    perm = torch.randperm(n)
    total = 0.0
    for s in range(0, n, 32):
        idx = perm[s:s + 32]
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    print(f"epoch {epoch} mse {total / n:.4f} (target variance {y.var().item():.4f})")
