"""Small CNN prepared for private training: BatchNorm layers are swapped for GroupNorm by a 'fix' helper, but the
helper runs after the optimizer was built from model.parameters()."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n = 800
images = torch.randn(n, 1, 16, 16)
labels = torch.randint(0, 4, (n,))
for c in range(4):  # each class has a bright quadrant
    r, q = divmod(c, 2)
    images[labels == c, :, r * 8:(r + 1) * 8, q * 8:(q + 1) * 8] += 0.5


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


def fix(module):
    """Replace every BatchNorm2d by a GroupNorm with the same channel count."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(4, child.num_features))
        else:
            fix(child)
    return module


model = nn.Sequential(block(1, 8), block(8, 16), nn.Flatten(), nn.Linear(16 * 4 * 4, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
model = fix(model)
criterion = nn.CrossEntropyLoss()

for epoch in range(3):
    perm = torch.randperm(n)
    total, correct = 0.0, 0
    for s in range(0, n, 50):
        idx = perm[s:s + 50]
        optimizer.zero_grad()
        out = model(images[idx])
        loss = criterion(out, labels[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += (out.argmax(1) == labels[idx]).sum().item()
    print(f"epoch {epoch} loss {total / n:.4f} acc {correct / n:.3f}")
