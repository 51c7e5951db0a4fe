"""Product-review sentiment classifier: CNN encoder with additive attention pooling.

Synthetic reviews of 12-40 tokens from a 400-word vocabulary; a review is
positive when it has more positive than negative opinion words ("not" flips the
next opinion word). Trained with batches of 32, validated with batches of 250
and, as in the serving path, one review at a time.
"""
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

VOCAB, PAD, NOT = 400, 0, 1
POS_WORDS = list(range(2, 22))
NEG_WORDS = list(range(22, 42))
FILLER = list(range(42, VOCAB))
MAX_LEN = 40


def make_review():
    while True:
        n = random.randint(12, MAX_LEN)
        toks, score = [], 0
        for _ in range(n):
            r = random.random()
            if r < 0.08:
                toks.append(random.choice(POS_WORDS))
                score += -1 if toks[-2:-1] == [NOT] else 1
            elif r < 0.16:
                toks.append(random.choice(NEG_WORDS))
                score += 1 if toks[-2:-1] == [NOT] else -1
            elif r < 0.20:
                toks.append(NOT)
            else:
                toks.append(random.choice(FILLER))
        if score != 0:
            return toks + [PAD] * (MAX_LEN - n), int(score > 0)


class ReviewDataset(Dataset):
    def __init__(self, n):
        self.items = [make_review() for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        toks, y = self.items[i]
        return torch.tensor(toks), y


class AttnConvClassifier(nn.Module):
    def __init__(self, vocab=VOCAB, emb=32, hidden=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb, padding_idx=PAD)
        self.conv = nn.Conv1d(emb, hidden, kernel_size=3, padding=1)
        self.attn = nn.Sequential(nn.Linear(hidden, 32), nn.Tanh(), nn.Linear(32, 1))
        self.fc = nn.Linear(hidden, 2)

    def forward(self, tokens):
        h = torch.relu(self.conv(self.emb(tokens).transpose(1, 2))).transpose(1, 2)  # (batch, time, hidden)
        scores = self.attn(h).masked_fill(tokens.eq(PAD).unsqueeze(-1), -1e9)
        weights = torch.softmax(scores, dim=0)                   # attention weights over time steps
        context = (weights * h).sum(dim=1)
        return self.fc(context)


@torch.no_grad()
def evaluate(model, loader, criterion):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        out = model(x)
        loss += criterion(out, y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return loss / n, correct / n


@torch.no_grad()
def serve_one_by_one(model, ds, n=300):
    model.eval()
    correct = 0
    for i in range(n):
        x, y = ds[i]
        correct += int(model(x.unsqueeze(0)).argmax(1).item() == y)
    return correct / n


def main():
    train_ds, val_ds = ReviewDataset(4000), ReviewDataset(1000)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=250)
    model = AttnConvClassifier()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    for epoch in range(8):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            out = model(x)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        val_loss, val_acc = evaluate(model, val_loader, criterion)
        print(f"epoch {epoch}: train_loss {tot / n:.4f} train_acc {correct / n:.3f}  "
              f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
    print(f"serving (batch of 1) accuracy on 300 validation reviews: {serve_one_by_one(model, val_ds):.3f}")


if __name__ == "__main__":
    main()
