"""CNN regressing the (x, y) position of a keypoint in a 16x16 image with SGD and weight_decay=0.0005."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic frames: a blurred keypoint on a cluttered background; target = its (x, y) in pixels ----
g = torch.Generator().manual_seed(1)
S = 16


def make_frames(n):
    xy = 2 + (S - 4) * torch.rand(n, 2, generator=g)
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    d2 = (xx[None] - xy[:, 0, None, None]) ** 2 + (yy[None] - xy[:, 1, None, None]) ** 2
    img = torch.exp(-d2 / 3.0)
    clutter = torch.randn(n, 1, 4, 4, generator=g)
    img = img + 0.3 * nn.functional.interpolate(clutter, size=(S, S), mode="bilinear").squeeze(1)
    img = img + 0.1 * torch.randn(n, S, S, generator=g)
    return img.unsqueeze(1), xy


x_train, y_train = make_frames(3500)
x_val, y_val = make_frames(1000)
Y_MEAN, Y_STD = y_train.mean(0), y_train.std(0)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 2),
)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
loss_fn = nn.MSELoss()

print(f"target std (pixels): {Y_STD.tolist()}")
for epoch in range(5):
    model.train()
    perm = torch.randperm(len(y_train))
    tot, nb = 0.0, 0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        loss = loss_fn(model(x_train[idx]), (y_train[idx] - Y_MEAN) / Y_STD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        pred = model(x_val) * Y_STD + Y_MEAN
        rmse = ((pred - y_val) ** 2).sum(1).mean().sqrt().item()
        spread = pred.std(0).mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_rmse_px {rmse:.3f} prediction_std_px {spread:.3f}")
