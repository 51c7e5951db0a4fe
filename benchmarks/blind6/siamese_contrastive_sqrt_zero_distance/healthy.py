"""Siamese verification net: contrastive loss adds a small epsilon before the sqrt of squared distances.

Face-embedding-like metric learning on synthetic descriptors: 30 identities, each sample is the
identity's template plus a shared nuisance "pose" component and noise. As in many scraped datasets,
about 1% of the training records are exact duplicates. Pairs are drawn on the fly (half positive,
half negative) and trained with the Hadsell et al. contrastive loss. Validation: recall@1 of held-out
samples against a gallery of other held-out samples.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)

N_ID, PER_ID, DIM, POSE = 30, 80, 64, 6
templates = torch.randn(N_ID, DIM)
pose_basis = 2.0 * torch.randn(POSE, DIM)


def sample(ids):
    pose = torch.randn(len(ids), POSE)
    return templates[ids] + pose @ pose_basis + 0.6 * torch.randn(len(ids), DIM)


train_ids = torch.arange(N_ID).repeat_interleave(PER_ID)
x_train = sample(train_ids)
dup = torch.randperm(len(x_train))[: len(x_train) // 100]        # duplicated records
x_train = torch.cat([x_train, x_train[dup]])
train_ids = torch.cat([train_ids, train_ids[dup]])
val_ids = torch.arange(N_ID).repeat_interleave(20)
x_val = sample(val_ids)


class PairDataset(Dataset):
    def __init__(self, x, ids):
        self.x, self.ids = x, ids.tolist()
        self.by_id = {}
        for i, c in enumerate(self.ids):
            self.by_id.setdefault(c, []).append(i)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        c = self.ids[i]
        if random.random() < 0.5:
            j = random.choice([k for k in self.by_id[c] if k != i])
            same = 1.0
        else:
            other = random.choice([k for k in range(N_ID) if k != c])
            j = random.choice(self.by_id[other])
            same = 0.0
        return self.x[i], self.x[j], torch.tensor(same)


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=2.0, eps=1e-9):
        super().__init__()
        self.margin = margin
        self.eps = eps

    def forward(self, e1, e2, target):
        distances = (e2 - e1).pow(2).sum(1)
        losses = 0.5 * (target * distances + (1 - target) * F.relu(self.margin - (distances + self.eps).sqrt()).pow(2))
        return losses.mean()


net = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 32))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
crit = ContrastiveLoss()
loader = DataLoader(PairDataset(x_train, train_ids), batch_size=64, shuffle=True)


def recall_at_1():
    net.eval()
    with torch.no_grad():
        e = net(x_val)
        d = torch.cdist(e, e)
        d.fill_diagonal_(float("inf"))
        nn_idx = d.argmin(1)
    net.train()
    return (val_ids[nn_idx] == val_ids).float().mean().item()


print(f"train records {len(x_train)} ({len(dup)} duplicates)  identities {N_ID}")
for epoch in range(10):
    total, n, nonfinite = 0.0, 0, 0
    for a, b, same in loader:
        loss = crit(net(a), net(b), same)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            nonfinite += 1
        total += loss.item()
        n += 1
    print(f"epoch {epoch}  loss {total / n:.4f}  non-finite batches {nonfinite:3d}  val recall@1 {recall_at_1():.3f}")
