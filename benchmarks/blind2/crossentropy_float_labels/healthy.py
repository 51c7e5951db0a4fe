"""3-class classifier on a numeric table loaded into numpy; FIXED: the Dataset returns the class labels as int64 (torch.long) class indices.

Crashes in nn.CrossEntropyLoss on the first batch.
"""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)
np.random.seed(0)

# a "CSV" table: 6 feature columns + label column, all parsed as float32
N = 3000
feats = np.random.randn(N, 6).astype(np.float32)
labels = (feats[:, 0] + feats[:, 1] > 0.5).astype(np.float32) + (feats[:, 2] > 1.0).astype(np.float32)
table = np.concatenate([feats, labels[:, None]], axis=1)


class TableDataset(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        x = torch.tensor(row[:-1], dtype=torch.float32)
        y = torch.tensor(int(row[-1]), dtype=torch.long)
        return x, y


train_ds = TableDataset(table[:2500])
val_ds = TableDataset(table[2500:])
train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
val_loader = DataLoader(val_ds, batch_size=500)

model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)


def evaluate():
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    model.train()
    return correct / len(val_ds)


for epoch in range(5):
    total = 0.0
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
    print(f"epoch {epoch}  train loss {total / len(train_ds):.4f}  val acc {evaluate():.3f}")

print(f"final val acc {evaluate():.3f}")
