"""Binary segmentation with a tiny U-Net-like net and nn.CrossEntropyLoss (n_classes=2); masks are read from
greyscale PNG-style arrays whose foreground pixels are 255."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)


def make_pair():
    img = rng.normal(0, 1, (3, 24, 24)).astype(np.float32)
    mask = np.zeros((24, 24), dtype=np.uint8)
    y0, x0 = rng.integers(0, 14, 2)
    mask[y0:y0 + 10, x0:x0 + 10] = 255          # how the mask PNG stores the object
    img[:, mask > 0] += 1.5
    return img, mask


pairs = [make_pair() for _ in range(250)]
images = torch.from_numpy(np.stack([p[0] for p in pairs]))
masks = torch.from_numpy(np.stack([p[1] for p in pairs])).long()


class TinyUNet(nn.Module):
    def __init__(self, n_classes=2):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2)
        self.out = nn.Conv2d(48, n_classes, 1)

    def forward(self, x):
        d = self.down(x)
        m = self.up(self.mid(self.pool(d)))
        return self.out(torch.cat([d, m], 1))


net = TinyUNet(n_classes=2)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-3)

for epoch in range(3):
    perm = torch.randperm(len(images))
    total = 0.0
    for s in range(0, len(perm), 16):
        idx = perm[s:s + 16]
        optimizer.zero_grad()
        masks_pred = net(images[idx])
        loss = criterion(masks_pred, masks[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        pred = net(images).argmax(1)
        fg = masks > 0
        iou = ((pred > 0) & fg).sum().item() / max(((pred > 0) | fg).sum().item(), 1)
    print(f"epoch {epoch} loss {total / len(perm):.4f} IoU {iou:.3f}")
