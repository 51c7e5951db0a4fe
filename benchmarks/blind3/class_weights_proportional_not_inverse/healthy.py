"""Small fully-convolutional segmenter for microscopy-style images with a rare class (tiny particles, about 1% of pixels); FIXED: the CrossEntropyLoss class weights are the inverse pixel frequency (total / (n_classes * count)).

The weights were meant to counter the class imbalance, but proportional
weights give the rare class the smallest weight, so the imbalance is made worse.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

SIZE, N_CLASSES = 32, 3  # 0 background, 1 cell body, 2 particle
CLASS_NAMES = ["background", "cell", "particle"]


def make_images(n, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    images = torch.zeros(n, 1, SIZE, SIZE)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        cy, cx = torch.randint(8, 24, (2,), generator=g).float()
        r = 4 + 4 * torch.rand(1, generator=g)
        cell = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        masks[i][cell] = 1
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            py, px = torch.randint(1, SIZE - 2, (2,), generator=g).tolist()
            masks[i, py:py + 2, px:px + 2] = 2
        images[i, 0] = 0.6 * (masks[i] == 1).float() + 1.2 * (masks[i] == 2).float()
    images += 0.3 * torch.randn(images.shape, generator=g)
    return images, masks


x_tr, m_tr = make_images(600, seed=1)
x_va, m_va = make_images(200, seed=2)
loader = DataLoader(TensorDataset(x_tr, m_tr), batch_size=16, shuffle=True)

counts = torch.bincount(m_tr.flatten(), minlength=N_CLASSES).float()
class_weights = counts.sum() / (N_CLASSES * counts)
print("pixel share per class", [f"{v:.3f}" for v in (counts / counts.sum()).tolist()])
print("class weights        ", [f"{v:.3f}" for v in class_weights.tolist()])

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
    nn.Conv2d(32, N_CLASSES, 1),
)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss(weight=class_weights)


def per_class_iou():
    model.eval()
    with torch.no_grad():
        pred = model(x_va).argmax(1)
    model.train()
    ious = []
    for c in range(N_CLASSES):
        inter = ((pred == c) & (m_va == c)).sum().item()
        union = ((pred == c) | (m_va == c)).sum().item()
        ious.append(inter / max(union, 1))
    return ious


for epoch in range(6):
    running = 0.0
    for xb, mb in loader:
        loss = criterion(model(xb), mb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
    ious = per_class_iou()
    print(f"epoch {epoch}  train loss {running / len(loader):.4f}  val IoU " + "  ".join(f"{n} {v:.3f}" for n, v in zip(CLASS_NAMES, ious)))
