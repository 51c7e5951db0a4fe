"""Next-character model on a small text corpus: the validation split is sampled from the same list of lines the
training split uses, so every validation line is also a training line."""
import random

import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
random.seed(0)

alphabet = "abcdefghij "
# a toy corpus: lines drawn from a small Markov chain, so held-out lines are predictable but not memorisable
trans = torch.softmax(torch.randn(len(alphabet), len(alphabet)) * 2.0, 1).double().numpy()
trans /= trans.sum(1, keepdims=True)
rng = np.random.default_rng(0)


def make_line(length=40):
    c = random.randrange(len(alphabet))
    out = [c]
    for _ in range(length - 1):
        c = int(rng.choice(len(alphabet), p=trans[c]))
        out.append(c)
    return out


lines = [make_line() for _ in range(1500)]
train_lines = lines[:1200]
val_lines = random.sample(train_lines, 300)
held_out = lines[1200:]
context = 6


def windows(ls):
    xs, ys = [], []
    for line in ls:
        for i in range(context, len(line)):
            xs.append(line[i - context:i])
            ys.append(line[i])
    return torch.tensor(xs), torch.tensor(ys)


train_x, train_y = windows(train_lines)
val_x, val_y = windows(val_lines)

model = nn.Sequential(nn.Embedding(len(alphabet), 16), nn.Flatten(), nn.Linear(16 * context, 512), nn.ReLU(),
                      nn.Linear(512, len(alphabet)))
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(5):
    perm = torch.randperm(len(train_x))
    total = 0.0
    for s in range(0, len(perm), 256):
        idx = perm[s:s + 256]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        val_loss = criterion(model(val_x), val_y).item()
    print(f"epoch {epoch} train loss {total / len(perm):.4f} val loss {val_loss:.4f} "
          f"val perplexity {torch.tensor(val_loss).exp().item():.2f}")
