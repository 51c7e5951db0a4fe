"""Small FCN lesion segmenter trained with a soft Dice loss computed on sigmoid(logits) (no rounding)."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

H = W = 24
N_TRAIN, N_VAL = 1200, 200
g = torch.Generator().manual_seed(1)
yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")


def make_scans(n):
    cy = 4 + (H - 8) * torch.rand(n, 1, 1, generator=g)
    cx = 4 + (W - 8) * torch.rand(n, 1, 1, generator=g)
    r = 2.5 + 3 * torch.rand(n, 1, 1, generator=g)
    mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2).float()
    img = 0.8 * mask + 0.5 * torch.randn(n, H, W, generator=g)
    return img.unsqueeze(1), mask.unsqueeze(1)


x_tr, m_tr = make_scans(N_TRAIN)
x_va, m_va = make_scans(N_VAL)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 1, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def dice_loss(logits, target, eps=1.0):
    pred = torch.sigmoid(logits)
    inter = (pred * target).sum((1, 2, 3))
    denom = pred.sum((1, 2, 3)) + target.sum((1, 2, 3))
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()


@torch.no_grad()
def val_iou():
    pred = (model(x_va) > 0).float()
    inter = (pred * m_va).sum()
    union = ((pred + m_va) > 0).float().sum()
    return (inter / union).item()


BATCH, EPOCHS = 32, 6
for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    for s in range(0, N_TRAIN, BATCH):
        idx = perm[s:s + BATCH]
        loss = dice_loss(model(x_tr[idx]), m_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    print(f"epoch {epoch} train_dice_loss {tot / nb:.4f} val_IoU {val_iou():.3f}")
