"""30-day readmission MLP (BatchNorm, dropout): model.train() is called at the start of every epoch (fixed).

Synthetic cohort: 48 features (labs, vitals, counts of prior visits, one-hot
ward), of which a handful carry signal through interactions; 900 training and
1500 validation admissions. The network is regularised with dropout because the
training cohort is small. Validation runs after every epoch.
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_FEAT = 48


def make_cohort(n, w):
    x = torch.randn(n, N_FEAT)
    ward = torch.randint(0, 6, (n,))
    x[:, 42:] = nn.functional.one_hot(ward, 6).float()
    risk = (x[:, :8] @ w[:8] + 0.8 * x[:, 0] * x[:, 1] - 0.7 * x[:, 2] * x[:, 3]
            + 0.6 * torch.relu(x[:, 4]) * x[:, 5] + 0.5 * (ward == 2).float() - 0.4)
    y = (torch.rand(n) < torch.sigmoid(1.6 * risk)).float()
    return x, y


class ReadmissionMLP(nn.Module):
    def __init__(self, d_in=N_FEAT, hidden=256, p=0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def auc(scores, labels):
    order = scores.argsort()
    ranks = torch.empty_like(order, dtype=torch.float)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float)
    pos = labels == 1
    n_pos, n_neg = pos.sum().item(), (~pos).sum().item()
    return (ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@torch.no_grad()
def validate(model, loader, criterion):
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        outs.append(model(x))
        ys.append(y)
    out, y = torch.cat(outs), torch.cat(ys)
    acc = ((out > 0).float() == y).float().mean().item()
    return criterion(out, y).item(), acc, auc(out, y)


def main():
    w = torch.randn(N_FEAT) * 0.6
    x_tr, y_tr = make_cohort(900, w)
    x_va, y_va = make_cohort(1500, w)
    train_loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(x_va, y_va), batch_size=500)

    model = ReadmissionMLP()
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    for epoch in range(30):
        model.train()
        tot, n = 0.0, 0
        for x, y in train_loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            n += len(y)
        val_loss, val_acc, val_auc = validate(model, val_loader, criterion)
        if epoch % 3 == 2 or epoch == 0:
            print(f"epoch {epoch:2d}: train_loss {tot / n:.4f}  val_loss {val_loss:.4f}  "
                  f"val_acc {val_acc:.3f}  val_AUC {val_auc:.3f}")


if __name__ == "__main__":
    main()
