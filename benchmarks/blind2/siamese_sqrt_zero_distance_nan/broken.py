"""Siamese embedding network trained with a hand-written contrastive loss; the Euclidean distance is torch.sqrt(sum of squares) with no epsilon.

Positive pairs are drawn at random from the same class, so now and then a
pair is the very same sample twice (distance exactly 0).
"""
import random
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)
random.seed(0)

N_CLASSES = 10
PER_CLASS = 150
DIM = 20
CENTERS = torch.randn(N_CLASSES, DIM, generator=torch.Generator().manual_seed(123)) * 2.0


class PairDataset(Dataset):
    """Returns (x1, x2, label) with label 1 for same class, 0 for different."""

    def __init__(self, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
        self.x = CENTERS[self.y] + torch.randn(len(self.y), DIM, generator=g) * 1.5
        self.by_class = {c: (self.y == c).nonzero().flatten().tolist() for c in range(N_CLASSES)}

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        c = self.y[i].item()
        if random.random() < 0.5:
            j = random.choice(self.by_class[c])          # may pick i itself
            return self.x[i], self.x[j], torch.tensor(1.0)
        other = random.choice([k for k in range(N_CLASSES) if k != c])
        j = random.choice(self.by_class[other])
        return self.x[i], self.x[j], torch.tensor(0.0)


class EmbeddingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))

    def forward(self, x):
        return self.net(x)


def contrastive_loss(e1, e2, label, margin=2.0):
    dist = torch.sqrt(((e1 - e2) ** 2).sum(dim=1))
    pos = label * dist.pow(2)
    neg = (1 - label) * F.relu(margin - dist).pow(2)
    return 0.5 * (pos + neg).mean()


def knn_accuracy(model, train_ds, val_ds):
    """1-nearest-neighbour accuracy of val samples against train embeddings."""
    model.eval()
    with torch.no_grad():
        d = torch.cdist(model(val_ds.x), model(train_ds.x))
        pred = train_ds.y[d.argmin(dim=1)]
        acc = (pred == val_ds.y).float().mean().item()
    model.train()
    return acc


train_ds = PairDataset(seed=1)
val_ds = PairDataset(seed=2)
loader = DataLoader(train_ds, batch_size=32, shuffle=True)

model = EmbeddingNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

step = 0
for epoch in range(4):
    for x1, x2, label in loader:
        loss = contrastive_loss(model(x1), model(x2), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
        step += 1
    print(f"epoch {epoch}  val 1-NN acc {knn_accuracy(model, train_ds, val_ds):.3f}")

print(f"final loss {loss.item():.4f}  val 1-NN acc {knn_accuracy(model, train_ds, val_ds):.3f}")
