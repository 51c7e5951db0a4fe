"""Traffic-sign style colour classifier: training images are read the OpenCV way (BGR channel order) while the
validation/driving images are read the PIL way (RGB); both then get the same ImageNet RGB normalisation."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

COLOURS = {0: (220, 30, 30), 1: (30, 30, 220), 2: (30, 200, 40), 3: (230, 210, 30)}  # red, blue, green, yellow (RGB)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def make_files(n):
    """Simulated image files on disk: uint8 HWC arrays stored in RGB order."""
    labels = rng.integers(0, 4, n)
    files = []
    yy, xx = np.mgrid[:16, :16]
    for lab in labels:
        img = rng.integers(90, 160, (16, 16, 3)).astype(np.float32)  # grey-ish background
        cy, cx, r = rng.integers(5, 11), rng.integers(5, 11), rng.integers(3, 6)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[mask] = np.array(COLOURS[int(lab)]) + rng.normal(0, 15, (mask.sum(), 3))
        files.append(np.clip(img, 0, 255).astype(np.uint8))
    return files, torch.tensor(labels)


def imread_cv2(arr):
    return arr[:, :, ::-1]          # OpenCV returns BGR


def open_pil(arr):
    return arr                      # PIL returns RGB


def to_tensor(arr):
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255.0
    return (t - MEAN) / STD


train_files, train_y = make_files(2000)
val_files, val_y = make_files(500)
train_x = torch.stack([to_tensor(imread_cv2(f)) for f in train_files])
val_x = torch.stack([to_tensor(open_pil(f)) for f in val_files])

model = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
    nn.Flatten(), nn.Linear(16, 4),
)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(4):
    model.train()
    perm = torch.randperm(len(train_x))
    total = 0.0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        out = model(val_x)
        val_loss = criterion(out, val_y).item()
        val_acc = (out.argmax(1) == val_y).float().mean().item()
    print(f"epoch {epoch} train loss {total / len(perm):.4f} val loss {val_loss:.4f} val acc {val_acc:.3f}")
