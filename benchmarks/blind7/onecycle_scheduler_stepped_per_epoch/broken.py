"""News topic classification with an EmbeddingBag (fastText-style) model and a one-cycle LR schedule.

Synthetic articles of 30-90 tokens from a 3000-word vocabulary in 6 topics;
each topic has its own keywords, mixed with shared vocabulary and keywords from
other topics. SGD with momentum, OneCycleLR up to max_lr=2.0, 6 epochs.
"""
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

TOPICS = ["world", "sports", "business", "sci/tech", "health", "culture"]
VOCAB, KW_PER_TOPIC = 3000, 80
KEYWORDS = [list(range(1 + t * KW_PER_TOPIC, 1 + (t + 1) * KW_PER_TOPIC)) for t in range(len(TOPICS))]
SHARED = list(range(1 + len(TOPICS) * KW_PER_TOPIC, VOCAB))


def make_article(topic):
    toks = []
    for _ in range(random.randint(30, 90)):
        r = random.random()
        if r < 0.12:
            toks.append(random.choice(KEYWORDS[topic]))
        elif r < 0.20:
            toks.append(random.choice(KEYWORDS[random.randrange(len(TOPICS))]))
        else:
            toks.append(random.choice(SHARED))
    return toks


class NewsDataset(Dataset):
    def __init__(self, n):
        self.items = []
        for i in range(n):
            topic = i % len(TOPICS)
            self.items.append((make_article(topic), topic))
        random.shuffle(self.items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    # EmbeddingBag input: one flat tensor of token ids plus the offset of each article
    lengths = [len(toks) for toks, _ in batch]
    text = torch.tensor([t for toks, _ in batch for t in toks])
    offsets = torch.tensor([0] + lengths[:-1]).cumsum(0)
    labels = torch.tensor([y for _, y in batch])
    return text, offsets, labels


class FastTextClassifier(nn.Module):
    def __init__(self, vocab=VOCAB, dim=64, n_classes=len(TOPICS)):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.fc = nn.Linear(dim, n_classes)
        self.embedding.weight.data.uniform_(-0.5, 0.5)
        self.fc.weight.data.uniform_(-0.5, 0.5)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))


@torch.no_grad()
def evaluate(model, loader, criterion):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for text, offsets, y in loader:
        out = model(text, offsets)
        loss += criterion(out, y).item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return loss / n, correct / n


def main():
    train_loader = DataLoader(NewsDataset(6000), batch_size=64, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(NewsDataset(1500), batch_size=500, collate_fn=collate)
    model = FastTextClassifier()
    criterion = nn.CrossEntropyLoss()
    epochs = 6
    optimizer = torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2.0, epochs=epochs,
                                                    steps_per_epoch=len(train_loader))

    for epoch in range(epochs):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for text, offsets, y in train_loader:
            out = model(text, offsets)
            loss = criterion(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tot += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        lr_now = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val_loss, val_acc = evaluate(model, val_loader, criterion)
        print(f"epoch {epoch}: lr {lr_now:.4f}  train_loss {tot / n:.4f} train_acc {correct / n:.3f}  "
              f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}")


if __name__ == "__main__":
    main()
