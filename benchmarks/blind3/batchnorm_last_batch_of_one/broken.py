"""Wide-and-deep style tabular model (categorical embeddings + BatchNorm1d on the continuous columns + MLP) for a churn-style binary target; the training DataLoader keeps the last incomplete batch, and 2,049 rows with batch_size=64 leave a final batch of one row.

BatchNorm1d cannot compute batch statistics from a single row in training
mode, so the run fails at the end of the first epoch.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_ROWS = 2049
CARDINALITIES = [12, 7, 30]  # e.g. plan type, region, signup month
N_CONT = 6


def make_table(n, seed):
    g = torch.Generator().manual_seed(seed)
    cats = torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDINALITIES], dim=1)
    cont = torch.randn(n, N_CONT, generator=g) * torch.tensor([1.0, 5.0, 100.0, 0.1, 2.0, 20.0]) + torch.tensor([0.0, 30.0, 500.0, 1.0, 0.0, 50.0])
    cat_effect = torch.sin(cats[:, 0].float()) + 0.5 * torch.cos(cats[:, 1].float() * 1.7) - 0.03 * cats[:, 2].float()
    logit = cat_effect + 0.8 * (cont[:, 1] - 30.0) / 5.0 - 0.6 * (cont[:, 2] - 500.0) / 100.0
    y = (torch.rand(n, generator=g) < torch.sigmoid(2.0 * logit)).float()
    return cats, cont, y


class WideDeep(nn.Module):
    def __init__(self):
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(c, 8) for c in CARDINALITIES])
        self.cont_norm = nn.BatchNorm1d(N_CONT)
        self.mlp = nn.Sequential(
            nn.Linear(8 * len(CARDINALITIES) + N_CONT, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1),
        )

    def forward(self, cats, cont):
        emb = torch.cat([e(cats[:, i]) for i, e in enumerate(self.embs)], dim=1)
        return self.mlp(torch.cat([emb, self.cont_norm(cont)], dim=1)).squeeze(1)


train_ds = TensorDataset(*make_table(N_ROWS, seed=1))
val_cats, val_cont, val_y = make_table(1000, seed=2)
train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)

model = WideDeep()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.BCEWithLogitsLoss()

for epoch in range(6):
    model.train()
    running = 0.0
    for step, (cats, cont, y) in enumerate(train_loader):
        loss = criterion(model(cats, cont), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        if epoch == 0 and step % 10 == 0:
            print(f"epoch 0 step {step:2d}  batch size {len(y):2d}  loss {loss.item():.4f}")
    model.eval()
    with torch.no_grad():
        logits = model(val_cats, val_cont)
        val_loss = criterion(logits, val_y).item()
        val_acc = ((logits > 0).float() == val_y).float().mean().item()
    print(f"epoch {epoch}  train loss {running / len(train_loader):.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")
