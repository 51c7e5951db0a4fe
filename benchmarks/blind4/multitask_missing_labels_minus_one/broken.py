"""Multi-task customer model (churn classification + next-quarter spend regression) whose churn labels are -1 where unknown, fed to nn.CrossEntropyLoss() without ignore_index=-1."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

N_FEAT, N_TRAIN, N_VAL = 12, 6000, 1000
g = torch.Generator().manual_seed(1)
w_churn = torch.randn(N_FEAT, generator=g)
w_spend = torch.randn(N_FEAT, generator=g)


def make_customers(n, missing_rate):
    x = torch.randn(n, N_FEAT, generator=g)
    churn = ((x @ w_churn + 0.5 * torch.randn(n, generator=g)) > 0.8).long()
    spend = torch.tanh(x @ w_spend / 3) * 2 + 0.2 * torch.randn(n, generator=g)
    unknown = torch.rand(n, generator=g) < missing_rate
    churn[unknown] = -1
    return x, churn, spend


x_tr, churn_tr, spend_tr = make_customers(N_TRAIN, 0.3)
x_va, churn_va, spend_va = make_customers(N_VAL, 0.0)


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(N_FEAT, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.churn_head = nn.Linear(64, 2)
        self.spend_head = nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.churn_head(h), self.spend_head(h).squeeze(1)


model = MultiTask()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
churn_loss_fn = nn.CrossEntropyLoss()
spend_loss_fn = nn.MSELoss()

BATCH, EPOCHS = 128, 8
for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot_c, tot_s, nb = 0.0, 0.0, 0
    for s in range(0, N_TRAIN, BATCH):
        idx = perm[s:s + BATCH]
        churn_logits, spend_pred = model(x_tr[idx])
        loss_c = churn_loss_fn(churn_logits, churn_tr[idx])
        loss_s = spend_loss_fn(spend_pred, spend_tr[idx])
        loss = loss_c + loss_s
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot_c += loss_c.item(); tot_s += loss_s.item(); nb += 1
    with torch.no_grad():
        cl, sp = model(x_va)
        acc = (cl.argmax(1) == churn_va).float().mean().item()
        mse = ((sp - spend_va) ** 2).mean().item()
    print(f"epoch {epoch} churn_loss {tot_c / nb:.4f} spend_loss {tot_s / nb:.4f} "
          f"val_churn_acc {acc:.3f} (majority {1 - churn_va.float().mean().item():.3f}) "
          f"val_spend_mse {mse:.4f} (target var {spend_va.var().item():.3f})")
