"""NCF-style implicit recommender: fresh negatives are sampled at the start of every epoch.

Matrix-factorisation recommender (GMF head, BCE on 1 positive + 4 sampled negatives per interaction)
trained on synthetic implicit feedback: 600 users, 1000 items, latent tastes plus item popularity.
Leave-one-out evaluation as in the NCF paper: the held-out item of each user is ranked among 99
items the user never interacted with; HR@10 and NDCG@10 are reported.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)

N_USER, N_ITEM, N_NEG = 600, 1000, 4

# ---- synthetic interactions -------------------------------------------------
u_taste = torch.randn(N_USER, 8)
i_taste = torch.randn(N_ITEM, 8)
popularity = torch.randn(N_ITEM) * 0.8
logits = u_taste @ i_taste.T / 1.5 + popularity
user_items = []
for u in range(N_USER):
    k = random.randint(15, 35)
    user_items.append(torch.multinomial(F.softmax(logits[u], 0), k).tolist())

train_pos, test_item, seen = [], [], []
for u, items in enumerate(user_items):
    test_item.append(items[-1])
    train_pos += [(u, i) for i in items[:-1]]
    seen.append(set(items))


class NCFData:
    """(user, item, label) rows: every positive plus n_neg sampled unseen items."""

    def __init__(self, pos, seen, n_neg):
        self.pos, self.seen, self.n_neg = pos, seen, n_neg

    def ng_sample(self):
        rows = []
        for u, i in self.pos:
            rows.append((u, i, 1.0))
            for _ in range(self.n_neg):
                j = random.randrange(N_ITEM)
                while j in self.seen[u]:
                    j = random.randrange(N_ITEM)
                rows.append((u, j, 0.0))
        t = torch.tensor(rows)
        self.users, self.items, self.labels = t[:, 0].long(), t[:, 1].long(), t[:, 2]

    def batches(self, size):
        perm = torch.randperm(len(self.labels))
        for k in range(0, len(perm), size):
            b = perm[k:k + size]
            yield self.users[b], self.items[b], self.labels[b]


# candidates for leave-one-out ranking: held-out item + 99 unseen items
candidates = []
for u in range(N_USER):
    negs = set()
    while len(negs) < 99:
        j = random.randrange(N_ITEM)
        if j not in seen[u]:
            negs.add(j)
    candidates.append([test_item[u]] + sorted(negs))
candidates = torch.tensor(candidates)


class GMF(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.user = nn.Embedding(N_USER, dim)
        self.item = nn.Embedding(N_ITEM, dim)
        self.out = nn.Linear(dim, 1)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)

    def forward(self, u, i):
        return self.out(self.user(u) * self.item(i)).squeeze(-1)


def evaluate(model):
    model.eval()
    with torch.no_grad():
        users = torch.arange(N_USER).unsqueeze(1).expand_as(candidates)
        scores = model(users, candidates)
        rank = (scores > scores[:, :1]).sum(1)  # position of the held-out item (column 0)
    model.train()
    hr = (rank < 10).float().mean().item()
    ndcg = torch.where(rank < 10, 1 / torch.log2(rank.float() + 2), torch.zeros(())).mean().item()
    return hr, ndcg


train_set = NCFData(train_pos, seen, N_NEG)
model = GMF()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
print(f"users {N_USER}  items {N_ITEM}  train interactions {len(train_pos)}")

for epoch in range(12):
    train_set.ng_sample()
    total, n = 0.0, 0
    for u, i, y in train_set.batches(256):
        loss = F.binary_cross_entropy_with_logits(model(u, i), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        n += len(y)
    if epoch % 2 == 1:
        hr, ndcg = evaluate(model)
        print(f"epoch {epoch:2d}  train bce {total / n:.4f}  HR@10 {hr:.3f}  NDCG@10 {ndcg:.3f}")
