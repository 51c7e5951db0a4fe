"""Two-layer GCN for node classification with the symmetric normalisation D^-1/2 (A + I) D^-1/2."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic citation-style graph: 4 communities, degree-heterogeneous ----
N, C, F_IN = 800, 4, 48
g = torch.Generator().manual_seed(1)
labels = torch.arange(N) % C
labels = labels[torch.randperm(N, generator=g)]
activity = torch.empty(N).exponential_(1.0, generator=g) + 0.3          # some nodes link a lot
p = 0.012 * activity[:, None] * activity[None, :]
p = torch.where(labels[:, None] == labels[None, :], p * 2.5, p * 0.5).clamp(max=1.0)
upper = torch.triu((torch.rand(N, N, generator=g) < p).float(), diagonal=1)
A = upper + upper.T
centers = torch.randn(C, F_IN, generator=g)
X = 0.35 * centers[labels] + torch.randn(N, F_IN, generator=g)          # weak, noisy node features

perm = torch.randperm(N, generator=g)
train_idx, val_idx = perm[:240], perm[240:]


def normalize_adjacency(A):
    A_self = A + torch.eye(A.shape[0])
    deg = A_self.sum(1)
    d_inv_sqrt = torch.diag(deg.pow(-0.5))
    return d_inv_sqrt @ A_self @ d_inv_sqrt


A_hat = normalize_adjacency(A)


class GCN(nn.Module):
    def __init__(self, f_in, hidden, n_cls):
        super().__init__()
        self.lin1 = nn.Linear(f_in, hidden)
        self.lin2 = nn.Linear(hidden, n_cls)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, a_hat):
        h = F.relu(a_hat @ self.lin1(x))
        h = self.drop(h)
        return a_hat @ self.lin2(h)


model = GCN(F_IN, 32, C)
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
loss_fn = nn.CrossEntropyLoss()

print(f"nodes {N}, edges {int(A.sum().item() // 2)}, mean degree {A.sum(1).mean():.1f}, max degree {A.sum(1).max():.0f}")
for epoch in range(10):
    for step in range(20):                     # full-batch GCN: one step per pass over the graph
        model.train()
        out = model(X, A_hat)
        loss = loss_fn(out[train_idx], labels[train_idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(X, A_hat)
        val_loss = loss_fn(out[val_idx], labels[val_idx]).item()
        val_acc = (out[val_idx].argmax(1) == labels[val_idx]).float().mean().item()
    print(f"epoch {epoch} train_loss {loss.item():.4g} val_loss {val_loss:.4g} val_acc {val_acc:.3f}")
