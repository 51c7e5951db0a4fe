"""CIFAR-10 variant built from a label file whose class ids run 1..10 (MATLAB style), shifted to 0..9 for
the network's 10 outputs."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n = 2000
class_ids = torch.randint(1, 11, (n,))          # ids as written in the label file: 1..10
images = torch.randn(n, 3, 8, 8) * 0.5
images += (class_ids.float() / 10).view(-1, 1, 1, 1)
images[:, 0] += (class_ids % 2).float().view(-1, 1, 1)

train_labels = class_ids - 1                    # 0-based for CrossEntropyLoss

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)

for epoch in range(6):
    perm = torch.randperm(n)
    total, correct = 0.0, 0
    for s in range(0, n, 100):
        idx = perm[s:s + 100]
        optimizer.zero_grad()
        out = model(images[idx])
        loss = criterion(out, train_labels[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += (out.argmax(1) == train_labels[idx]).sum().item()
    print(f"epoch {epoch} loss {total / n:.4f} acc {correct / n:.3f}")
