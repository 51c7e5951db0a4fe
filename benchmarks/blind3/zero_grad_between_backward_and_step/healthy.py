"""Small Trainer class for a 1D-CNN vibration-fault classifier; FIXED: the step method calls optimizer.zero_grad() before loss.backward(), then optimizer.step().

The zero_grad() call was moved to sit next to step() while refactoring the
training loop into a class, so the gradients are cleared right before the
optimizer reads them.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_CLASSES, LENGTH = 4, 128


def make_signals(n, seed):
    """Vibration snippets: each fault type adds a characteristic frequency."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    t = torch.arange(LENGTH).float()
    freqs = torch.tensor([0.05, 0.11, 0.19, 0.29])
    phase = 2 * torch.pi * torch.rand(n, 1, generator=g)
    x = torch.sin(2 * torch.pi * freqs[y].unsqueeze(1) * t + phase)
    x = x + 0.8 * torch.randn(n, LENGTH, generator=g)
    return x.unsqueeze(1), y


class FaultNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )
        self.classifier = nn.Linear(32, N_CLASSES)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class Trainer:
    def __init__(self, model, lr, train_set, val_set, batch_size=64):
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.criterion = nn.CrossEntropyLoss()
        self.train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
        self.val_set = val_set

    def train_step(self, x, y):
        loss = self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def evaluate(self):
        self.model.eval()
        x, y = self.val_set.tensors
        with torch.no_grad():
            logits = self.model(x)
        self.model.train()
        return self.criterion(logits, y).item(), (logits.argmax(1) == y).float().mean().item()

    def fit(self, epochs):
        for epoch in range(epochs):
            self.model.train()
            losses = [self.train_step(x, y) for x, y in self.train_loader]
            val_loss, val_acc = self.evaluate()
            print(f"epoch {epoch}  train loss {sum(losses) / len(losses):.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")


train_set = TensorDataset(*make_signals(3000, seed=1))
val_set = TensorDataset(*make_signals(800, seed=2))
trainer = Trainer(FaultNet(), lr=2e-3, train_set=train_set, val_set=val_set)
trainer.fit(epochs=4)
