"""Xception-style blocks: the residual branch starts with nn.ReLU(inplace=True) and runs after the 1x1 skip convolution
has already saved the same input tensor for its backward pass."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.rep = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, inp):
        skip = self.skip(inp)
        x = self.rep(inp)
        return x + skip


model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16),
    Block(16, 32), Block(32, 32),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
)
images = torch.randn(400, 3, 12, 12)
labels = torch.randint(0, 5, (400,))
images += labels.view(-1, 1, 1, 1) * 0.3
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

for epoch in range(3):
    perm = torch.randperm(400)
    total = 0.0
    for s in range(0, 400, 50):
        idx = perm[s:s + 50]
        optimizer.zero_grad()
        loss = criterion(model(images[idx]), labels[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    print(f"epoch {epoch} loss {total / 400:.4f}")
