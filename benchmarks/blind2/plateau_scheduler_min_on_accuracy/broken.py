"""MLP classifier on tabular synthetic data with ReduceLROnPlateau stepped on validation accuracy, but the scheduler is left in its default mode='min'.

Rising accuracy counts as "no improvement" for a 'min' scheduler, so the LR
is cut again and again while the model is still improving.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_FEAT, N_CLASSES = 20, 5


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N_FEAT, generator=g)
    w = torch.randn(N_FEAT, N_CLASSES, generator=torch.Generator().manual_seed(99))
    y = (x @ w).argmax(1)
    return x, y


xtr, ytr = make_data(4000, seed=1)
xva, yva = make_data(1000, seed=2)
train_loader = DataLoader(TensorDataset(xtr, ytr), batch_size=128, shuffle=True)

model = nn.Sequential(nn.Linear(N_FEAT, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, N_CLASSES))
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2)


def validate():
    model.eval()
    with torch.no_grad():
        acc = (model(xva).argmax(1) == yva).float().mean().item()
    model.train()
    return acc


for epoch in range(20):
    total = 0.0
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
    val_acc = validate()
    scheduler.step(val_acc)
    print(f"epoch {epoch:2d}  lr {optimizer.param_groups[0]['lr']:.2e}  train loss {total / len(xtr):.4f}  val acc {val_acc:.3f}")

print(f"final val acc {validate():.3f}")
