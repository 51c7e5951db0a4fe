"""Small FCN for per-pixel labelling: the cross-entropy is summed over pixels (reduction='sum', the old
size_average=False) while the learning rate is one tuned for a per-pixel mean."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, n_classes = 240, 3
images = torch.randn(n, 3, 16, 16) * 0.3
targets = torch.zeros(n, 16, 16, dtype=torch.long)
for i in range(n):
    for c in (1, 2):
        y0, x0 = torch.randint(0, 10, (2,)).tolist()
        targets[i, y0:y0 + 6, x0:x0 + 6] = c
        images[i, c - 1, y0:y0 + 6, x0:x0 + 6] += 1.0

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, n_classes, 1),
)
criterion = nn.CrossEntropyLoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(5):
    perm = torch.randperm(n)
    total = 0.0
    for s in range(0, n, 8):
        idx = perm[s:s + 8]
        optimizer.zero_grad()
        loss = criterion(model(images[idx]), targets[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() / targets[idx].numel()
    with torch.no_grad():
        acc = (model(images).argmax(1) == targets).float().mean().item()
    print(f"epoch {epoch} mean pixel loss {total / (n // 8):.4f} pixel acc {acc:.3f}")
