"""Bearing fault detection with an LSTM whose state is reset for every batch.

Synthetic two-axis accelerometer recordings of a motor bearing: every window is 32
samples of shaft rotation (random speed, phase and gain) plus noise, and may contain
one short transient somewhere in it: an impact on the radial axis, an impact on the
axial axis, rattling, or a rub. The LSTM reads the window and classifies it from its
last output (no transient = healthy), so it has to remember a transient until the end
of the window. The model keeps its (h, c) state between calls, a pattern carried over
from a streaming version of the monitor; the state is reset at the start of every epoch.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

CLASSES = ["healthy", "radial_impact", "axial_impact", "rattling", "rub"]
SEQ_LEN, CHANNELS = 32, 2
EVENTS = torch.tensor([  # 4-sample transient shapes on the two axes, one per fault class
    [[2.5, 0.0], [1.5, 0.0], [0.5, 0.0], [0.0, 0.0]],
    [[0.0, -2.5], [0.0, -1.5], [0.0, -0.5], [0.0, 0.0]],
    [[2.0, 2.0], [-2.0, -2.0], [2.0, 2.0], [-2.0, -2.0]],
    [[1.5, -1.5], [1.5, -1.5], [1.5, -1.5], [1.5, -1.5]],
])
EPOCHS = 12


def make_windows(n):
    labels = torch.randint(0, len(CLASSES), (n,))
    t = torch.arange(SEQ_LEN).float()
    x = torch.empty(n, SEQ_LEN, CHANNELS)
    for i in range(n):
        speed = random.uniform(0.18, 0.26)               # shaft turns per sample
        phase = random.uniform(0, 2 * math.pi)
        gain = random.uniform(0.7, 1.3)
        shaft = torch.sin(2 * math.pi * speed * t + phase)
        signal = torch.stack([shaft, torch.cos(2 * math.pi * speed * t + phase)], dim=1)
        label = int(labels[i])
        if label > 0:                                    # one short transient somewhere in the window
            t0 = random.randint(0, SEQ_LEN - 4)
            signal[t0:t0 + 4] += EVENTS[label - 1] * random.uniform(0.8, 1.2)
        x[i] = gain * signal + 0.3 * torch.randn(SEQ_LEN, CHANNELS)
    return x, labels


class FaultLSTM(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.hidden = hidden
        self.lstm = nn.LSTM(CHANNELS, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(CLASSES))
        self.state = None

    def reset_state(self):
        self.state = None

    def forward(self, x):
        if self.state is None or self.state[0].size(1) != x.size(0):
            zeros = torch.zeros(1, x.size(0), self.hidden)
            self.state = (zeros, zeros.clone())
        out, (h, c) = self.lstm(x, self.state)
        self.state = (h.detach(), c.detach())
        return self.head(out[:, -1])


def evaluate(model, loader):
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            model.reset_state()
            logits = model(x)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
    return total / n, correct / n


def main():
    train_loader = DataLoader(TensorDataset(*make_windows(3000)), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(*make_windows(1000)), batch_size=100)
    model = FaultLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    for epoch in range(EPOCHS):
        model.train()
        total, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            model.reset_state()
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        scheduler.step()
        val_loss, val_acc = evaluate(model, val_loader)
        print(f"epoch {epoch:2d}  train loss {total / n:.4f}  train acc {correct / n:.3f}  "
              f"val loss {val_loss:.4f}  val acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
