"""Small CNN on 12x12 synthetic 'glyph' images; dropout is applied with F.dropout(x, p) in forward(), which ignores model.eval().

Validation runs under model.eval() + torch.no_grad(), so the author expects
deterministic, dropout-free predictions.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_CLASSES = 6


def make_templates():
    g = torch.Generator().manual_seed(123)
    return (torch.rand(N_CLASSES, 12, 12, generator=g) > 0.6).float()


TEMPLATES = make_templates()


class GlyphDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, N_CLASSES, (n,), generator=g)
        noise = torch.randn(n, 12, 12, generator=g) * 0.9
        self.x = (TEMPLATES[self.y] + noise).unsqueeze(1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 3 * 3, 64)
        self.fc2 = nn.Linear(64, N_CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5)
        return self.fc2(x)


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total


train_loader = DataLoader(GlyphDataset(3000, seed=1), batch_size=64, shuffle=True)
val_loader = DataLoader(GlyphDataset(1000, seed=2), batch_size=500)

model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

for epoch in range(6):
    model.train()
    running = 0.0
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(y)
    acc1 = evaluate(model, val_loader)
    acc2 = evaluate(model, val_loader)
    print(f"epoch {epoch}  train loss {running / len(train_loader.dataset):.4f}  val acc {acc1:.3f} (re-run: {acc2:.3f})")

print(f"final val acc {evaluate(model, val_loader):.3f}")
