"""Matrix-factorisation recommender regressing raw watch time in seconds (mean ~1800 s) with MSE, targets not standardised."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

N_USERS, N_ITEMS, K = 400, 300, 8
g = torch.Generator().manual_seed(1)
U_true = torch.randn(N_USERS, K, generator=g) / K ** 0.25
V_true = torch.randn(N_ITEMS, K, generator=g) / K ** 0.25
item_base = 1800 + 300 * torch.randn(N_ITEMS, generator=g)  # seconds
user_base = 200 * torch.randn(N_USERS, generator=g)


def sample(n):
    u = torch.randint(0, N_USERS, (n,), generator=g)
    i = torch.randint(0, N_ITEMS, (n,), generator=g)
    affinity = (U_true[u] * V_true[i]).sum(1)
    watch = item_base[i] + user_base[u] + 400 * affinity + 100 * torch.randn(n, generator=g)
    return u, i, watch.clamp(min=0)


u_tr, i_tr, y_tr = sample(40000)
u_va, i_va, y_va = sample(5000)
Y_MEAN, Y_STD = y_tr.mean(), y_tr.std()


class MF(nn.Module):
    def __init__(self, k=16):
        super().__init__()
        self.user = nn.Embedding(N_USERS, k)
        self.item = nn.Embedding(N_ITEMS, k)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        self.global_bias = nn.Parameter(torch.zeros(1))
        for e in (self.user, self.item):
            nn.init.normal_(e.weight, std=0.1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, u, i):
        dot = (self.user(u) * self.item(i)).sum(1)
        return dot + self.user_bias(u).squeeze(1) + self.item_bias(i).squeeze(1) + self.global_bias


def to_target(y):
    return y


def to_seconds(pred):
    return pred


model = MF()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.MSELoss()

BATCH, EPOCHS = 256, 8
print(f"target: mean {Y_MEAN:.0f} s, std {Y_STD:.0f} s")
for epoch in range(EPOCHS):
    perm = torch.randperm(len(y_tr))
    tot, nb = 0.0, 0
    for s in range(0, len(y_tr), BATCH):
        idx = perm[s:s + BATCH]
        pred = model(u_tr[idx], i_tr[idx])
        loss = loss_fn(pred, to_target(y_tr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    with torch.no_grad():
        pv = to_seconds(model(u_va, i_va))
        rmse = ((pv - y_va) ** 2).mean().sqrt().item()
        r2 = 1 - ((pv - y_va) ** 2).mean().item() / y_va.var().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4g} val_rmse_seconds {rmse:.1f} val_R2 {r2:.3f} "
          f"mean_val_prediction {pv.mean().item():.0f} s")
