"""Small Inception-style CNN whose BasicConv2d blocks use BatchNorm2d(eps=0.001, momentum=0.1), so the running statistics track the training data."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic 16x16 texture patches: 4 orientations of a noisy grating, pixel values in [0, 1] ----
g = torch.Generator().manual_seed(1)
S, N_CLS = 16, 4


def make_images(n):
    y = torch.randint(0, N_CLS, (n,), generator=g)
    theta = y.float() * math.pi / N_CLS + 0.15 * torch.randn(n, generator=g)
    freq = 0.45 + 0.2 * torch.rand(n, generator=g)
    phase = 6.28 * torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    proj = xx[None] * torch.cos(theta)[:, None, None] + yy[None] * torch.sin(theta)[:, None, None]
    img = 0.5 + 0.25 * torch.sin(freq[:, None, None] * proj + phase[:, None, None])
    img = img + 0.25 * torch.randn(n, S, S, generator=g)
    return img.clamp(0, 1).unsqueeze(1), y


x_train, y_train = make_images(4000)
x_val, y_val = make_images(1500)


class BasicConv2d(nn.Module):
    def __init__(self, in_planes, out_planes, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_planes, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


model = nn.Sequential(
    BasicConv2d(1, 16, kernel_size=5, padding=2), nn.MaxPool2d(2),
    BasicConv2d(16, 32, kernel_size=3, padding=1), nn.MaxPool2d(2),
    BasicConv2d(32, 32, kernel_size=3, padding=1),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, N_CLS),
)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(4):
    model.train()
    perm = torch.randperm(len(y_train))
    tot, correct, nb = 0.0, 0, 0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        out = model(x_train[idx])
        loss = loss_fn(out, y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
        correct += (out.argmax(1) == y_train[idx]).sum().item()
    model.eval()
    with torch.no_grad():
        out = model(x_val)
        val_loss = loss_fn(out, y_val).item()
        val_acc = (out.argmax(1) == y_val).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} train_acc {correct / len(y_train):.3f} "
          f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
