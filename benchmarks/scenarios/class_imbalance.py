# expect: class_imbalance
"""Fraud-detection style tabular data: 3% positives, weak signal, an unweighted cross-entropy."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(7)
n = 4000
X = torch.randn(n, 16, generator=g)
fraud = (torch.rand(n, generator=g) < 0.03).long()
X[fraud == 1, :2] += 0.4  # fraud shifts two features a little

train = DataLoader(TensorDataset(X, fraud), batch_size=128, shuffle=True, generator=g)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.out = nn.Linear(64, 2)

    def forward(self, x):
        return self.out(self.body(x))


torch.manual_seed(0)
clf = Classifier()
opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
for epoch in range(3):
    for xb, yb in train:
        loss = F.cross_entropy(clf(xb), yb)  # the bug: no class weights for 97% / 3% labels
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (clf(X).argmax(1) == fraud).float().mean()
    print(f"epoch {epoch} loss {loss.item():.3f} accuracy {acc:.3f}")
