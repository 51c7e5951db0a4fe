"""Population-count regression from per-cell covariates: the network ends in Softplus so that counts stay
non-negative."""
import torch
import torch.nn as nn

torch.manual_seed(10)
torch.set_num_threads(1)

n, d = 4000, 12
covariates = torch.randn(n, d)
true_w = torch.rand(d) * 0.4
counts = torch.relu(covariates @ true_w + 1.0) * 20 + torch.rand(n) * 2
train_x, train_y = covariates[:3200], counts[:3200]
val_x, val_y = covariates[3200:], counts[3200:]

scale_net = nn.Sequential(
    nn.Linear(d, 32), nn.ReLU(),
    nn.Linear(32, 32), nn.ReLU(),
    nn.Linear(32, 1), nn.Softplus(),
)
optimizer = torch.optim.Adam(scale_net.parameters(), lr=1e-3)
loss_fn = nn.L1Loss()

for epoch in range(8):
    perm = torch.randperm(len(train_x))
    total = 0.0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        pred = scale_net(train_x[idx]).squeeze(1)
        loss = loss_fn(pred, train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        val_pred = scale_net(val_x).squeeze(1)
    print(f"epoch {epoch} train L1 {total / len(perm):.3f} val L1 {loss_fn(val_pred, val_y).item():.3f} "
          f"share of zero predictions {(val_pred == 0).float().mean().item():.2f}")
