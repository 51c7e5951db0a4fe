"""1D-CNN vibration-fault classifier trained with gradient accumulation where optimizer.step() runs on every micro-batch but zero_grad() only every ACCUM micro-batches."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

T, N_CLASSES, N_TRAIN, N_VAL = 64, 4, 4096, 800
g = torch.Generator().manual_seed(1)
t = torch.arange(T, dtype=torch.float32)


def make_signals(n):
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    freq = 0.05 + 0.06 * y.float() + 0.01 * torch.randn(n, generator=g)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    x = torch.sin(2 * math.pi * freq[:, None] * t + phase[:, None]) + 0.8 * torch.randn(n, T, generator=g)
    return x.unsqueeze(1), y


x_tr, y_tr = make_signals(N_TRAIN)
x_va, y_va = make_signals(N_VAL)

model = nn.Sequential(
    nn.Conv1d(1, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
    nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
    nn.Flatten(), nn.Linear(32, N_CLASSES))
opt = torch.optim.SGD(model.parameters(), lr=0.15, momentum=0.9)
MICRO, ACCUM, EPOCHS = 16, 8, 6  # effective batch 128

for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    opt.zero_grad()
    for step, s in enumerate(range(0, N_TRAIN, MICRO)):
        idx = perm[s:s + MICRO]
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx]) / ACCUM
        loss.backward()
        tot += loss.item() * ACCUM; nb += 1
        opt.step()
        if (step + 1) % ACCUM == 0:
            opt.zero_grad()
    with torch.no_grad():
        logits = model(x_va)
        val_loss = F.cross_entropy(logits, y_va).item()
        val_acc = (logits.argmax(1) == y_va).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
