"""GRU activity classifier with a linear-warmup + cosine LR schedule sized in optimizer steps and stepped once per batch."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

T, F_IN, N_CLASSES, N_TRAIN, N_VAL = 30, 6, 5, 3200, 600
g = torch.Generator().manual_seed(1)
templates = torch.randn(N_CLASSES, 4, F_IN, generator=g)


def make_windows(n):
    # accelerometer-like windows: a class-specific 4-step motif at a random place, in noise
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = 0.7 * torch.randn(n, T, F_IN, generator=g)
    start = torch.randint(0, T - 4, (n,), generator=g)
    for k in range(4):
        x[torch.arange(n), start + k] += templates[y, k]
    return x, y


x_tr, y_tr = make_windows(N_TRAIN)
x_va, y_va = make_windows(N_VAL)


class GRUClassifier(nn.Module):
    def __init__(self, h=64):
        super().__init__()
        self.gru = nn.GRU(F_IN, h, batch_first=True)
        self.head = nn.Linear(h, N_CLASSES)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out.max(1).values)


model = GRUClassifier()
BATCH, EPOCHS = 64, 10
steps_per_epoch = math.ceil(N_TRAIN / BATCH)
total_steps = EPOCHS * steps_per_epoch
warmup_steps = int(0.1 * total_steps)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)


def lr_lambda(step):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)

for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    lr_now = opt.param_groups[0]["lr"]
    for s in range(0, N_TRAIN, BATCH):
        idx = perm[s:s + BATCH]
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
        sched.step()
    with torch.no_grad():
        logits = model(x_va)
        val_acc = (logits.argmax(1) == y_va).float().mean().item()
    print(f"epoch {epoch} lr {lr_now:.2e} train_loss {tot / nb:.4f} val_acc {val_acc:.3f}")
