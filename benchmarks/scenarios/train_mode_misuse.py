# expect: train_mode_misuse
"""A small CNN with BatchNorm and Dropout, validated after every epoch.

`model.train()` is called once before the epoch loop; the validation pass switches the model to
eval mode and nothing switches it back, so from the second epoch on it trains in eval mode.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        return self.fc(self.drop(self.features(x).flatten(1)))


torch.manual_seed(3)
def make(n):
    y = torch.randint(0, 4, (n,))
    x = torch.randn(n, 1, 12, 12) * 0.5
    for c in range(4):  # each class lights up one quadrant
        r, s = divmod(c, 2)
        x[y == c, :, r * 6:(r + 1) * 6, s * 6:(s + 1) * 6] += 1.0
    return TensorDataset(x, y)

train_loader = DataLoader(make(512), batch_size=32, shuffle=True)
val_loader = DataLoader(make(256), batch_size=128)
model = SmallCNN()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)

model.train()  # the bug: train mode is set once, before the epochs; validation below turns it off
for epoch in range(4):
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in val_loader:
            logits = model(x)
            val_loss = F.cross_entropy(logits, y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    print(f"epoch {epoch}: val loss {val_loss.item():.3f} acc {correct / total:.3f}")
