"""Implicit-feedback recommender (generalised matrix factorisation) whose raw score goes to
nn.BCEWithLogitsLoss."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n_users, n_items, dim = 300, 200, 16
true_u = torch.randn(n_users, 8)
true_i = torch.randn(n_items, 8)
pairs_u = torch.randint(0, n_users, (20000,))
pairs_i = torch.randint(0, n_items, (20000,))
clicked = ((true_u[pairs_u] * true_i[pairs_i]).sum(1) > 0).float()


class MF(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.out = nn.Sequential(nn.Linear(dim, 1))

    def forward(self, u, i):
        return self.out(self.user(u) * self.item(i)).squeeze(1)


model = MF()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

for epoch in range(10):
    perm = torch.randperm(len(clicked))
    total = 0.0
    for s in range(0, len(perm), 256):
        idx = perm[s:s + 256]
        optimizer.zero_grad()
        loss = criterion(model(pairs_u[idx], pairs_i[idx]), clicked[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        pred = model(pairs_u, pairs_i)
    print(f"epoch {epoch} loss {total / len(perm):.4f} mean score {pred.mean().item():.3f}")
