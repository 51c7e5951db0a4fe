"""CNN with a spatial attention map whose border is zeroed on a copy (att = att.clone()), so the sigmoid output autograd saved is left intact."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic aerial tiles: a landmark shape (cross / ring / bar / blob) somewhere inside, clutter on the frame ----
g = torch.Generator().manual_seed(1)
S, N_CLS = 16, 4
yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")


def make_tiles(n):
    y = torch.randint(0, N_CLS, (n,), generator=g)
    cx = 5 + 6 * torch.rand(n, generator=g)
    cy = 5 + 6 * torch.rand(n, generator=g)
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    r = (dx ** 2 + dy ** 2).sqrt()
    shapes = torch.stack([
        ((dx.abs() < 1) & (dy.abs() < 4)) | ((dy.abs() < 1) & (dx.abs() < 4)),   # cross
        (r > 2.5) & (r < 4),                                                      # ring
        (dx.abs() < 4) & (dy.abs() < 1.2),                                         # bar
        r < 2.5,                                                                   # blob
    ], 1).float()
    img = shapes[torch.arange(n), y]
    frame = torch.zeros(S, S)
    frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = 1, 1, 1, 1
    img = img + frame * 1.5 * torch.rand(n, S, S, generator=g) + 0.3 * torch.randn(n, S, S, generator=g)
    return img.unsqueeze(1), y


x_train, y_train = make_tiles(4000)
x_val, y_val = make_tiles(1000)


class AttentionNet(nn.Module):
    def __init__(self, polish=True):
        super().__init__()
        self.polish = polish
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.att_conv = nn.Conv2d(32, 1, 1)
        self.head = nn.Linear(32, N_CLS)

    def forward(self, x):
        f = self.features(x)
        att = torch.sigmoid(self.att_conv(f))
        if self.polish:
            att = att.clone()
            att[:, :, :, 0] = 0
            att[:, :, :, -1] = 0
            att[:, :, 0, :] = 0
            att[:, :, -1, :] = 0
        pooled = (f * att).sum((2, 3)) / (att.sum((2, 3)) + 1e-6)
        return self.head(pooled)


model = AttentionNet()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(4):
    model.train()
    perm = torch.randperm(len(y_train))
    tot, nb = 0.0, 0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_acc {val_acc:.3f}")
