"""MLP regressor trained under torch.autocast(bfloat16) on CPU; the model itself is also cast with model.to(torch.bfloat16), so the weights and Adam states live in bf16.

The author wanted "bf16 training" to save memory and added the cast on top of
autocast.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_FEAT = 16


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEAT, generator=g)
    w = torch.randn(N_FEAT, 1, generator=torch.Generator().manual_seed(42)) / N_FEAT ** 0.5
    y = torch.sin(x @ w * 2.0) + 0.3 * (x[:, :1] * x[:, 1:2]) + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


xtr, ytr = make_data(4000, seed=1)
xva, yva = make_data(1000, seed=2)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True)

model = nn.Sequential(nn.Linear(N_FEAT, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 1))
model = model.to(torch.bfloat16)
optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
loss_fn = nn.MSELoss()


def validate():
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(xva)
    model.train()
    return loss_fn(pred.float(), yva).item()


step = 0
for epoch in range(6):
    for x, y in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = model(x)
        loss = loss_fn(pred.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
        step += 1
    print(f"epoch {epoch}  val mse {validate():.4f}  (target variance {yva.var().item():.4f})")

print(f"final val mse {validate():.4f}")
