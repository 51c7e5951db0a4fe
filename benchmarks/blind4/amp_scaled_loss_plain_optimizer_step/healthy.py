"""Coordinate MLP (Fourier features -> RGB, NeRF-style) trained under float16 autocast with the GradScaler used end to end (scaler.step + scaler.update)."""
import math
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

RES = 48
g = torch.Generator().manual_seed(1)
ys, xs = torch.meshgrid(torch.linspace(-1, 1, RES), torch.linspace(-1, 1, RES), indexing="ij")
coords = torch.stack([xs, ys], -1).reshape(-1, 2)
# a smooth synthetic "photo": three colour channels from a few random plane waves
waves = torch.randn(3, 6, 2, generator=g) * 3
amps = torch.rand(3, 6, generator=g)
rgb = torch.stack([(amps[c] * torch.sin(coords @ waves[c].t())).sum(1) for c in range(3)], 1)
rgb = torch.sigmoid(rgb)
val_mask = torch.rand(len(coords), generator=g) < 0.2
c_tr, y_tr = coords[~val_mask], rgb[~val_mask]
c_va, y_va = coords[val_mask], rgb[val_mask]

B_FOURIER = torch.randn(2, 32, generator=g) * 2.0


def encode(c):
    proj = 2 * math.pi * c @ B_FOURIER
    return torch.cat([proj.sin(), proj.cos()], 1)


model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
loss_fn = nn.MSELoss()


def psnr(pred, target):
    return (10 * torch.log10(1.0 / ((pred - target) ** 2).mean())).item()


BATCH, EPOCHS = 256, 12
for epoch in range(EPOCHS):
    perm = torch.randperm(len(c_tr))
    tot, nb = 0.0, 0
    for s in range(0, len(c_tr), BATCH):
        idx = perm[s:s + BATCH]
        with torch.autocast("cpu", dtype=torch.float16):
            pred = model(encode(c_tr[idx]))
            loss = loss_fn(pred.float(), y_tr[idx])
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        tot += loss.item(); nb += 1
    with torch.no_grad():
        pv = model(encode(c_va)).clamp(0, 1)
    print(f"epoch {epoch} train_mse {tot / nb:.5f} val_psnr_db {psnr(pv, y_va):.2f}")
