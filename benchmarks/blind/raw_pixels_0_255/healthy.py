"""MNIST-style MLP fed pixel intensities scaled to [0, 1] and standardised."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

# 28x28 greyscale "digits": each class lights up its own strokes on a dark background
n_classes = 10
templates = (rng.random((n_classes, 28, 28)) > 0.8).astype(np.float32)
labels = rng.integers(0, n_classes, 5000)
pixels = templates[labels] * rng.uniform(150, 255, (5000, 28, 28)) + rng.uniform(0, 40, (5000, 28, 28))
pixels = np.clip(pixels, 0, 255).astype(np.uint8)

x = torch.from_numpy(pixels).float().view(-1, 784) / 255.0
x = (x - x.mean()) / x.std()
y = torch.from_numpy(labels)
train_x, train_y, test_x, test_y = x[:4000], y[:4000], x[4000:], y[4000:]

model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, n_classes))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(4):
    perm = torch.randperm(len(train_x))
    total = 0.0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    print(f"epoch {epoch} loss {total / len(perm):.4f} test acc {acc:.3f}")
