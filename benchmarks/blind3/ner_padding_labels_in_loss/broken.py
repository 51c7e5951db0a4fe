"""BiLSTM named-entity tagger on sentences padded to a fixed max_seq_length; the padded positions get label 0 ("O") and are counted in the CrossEntropyLoss.

Sentences are 4-16 words long but every batch is padded to 64 positions, so
most of the positions the loss averages over are padding labelled "O".
"""
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

MAX_LEN = 64
PAD_ID = 0
PAD_LABEL = 0  # padding positions are labelled like "O"
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
VOCAB = 400
# word id ranges: 1-9 cue words, 10-79 person-ish words, 80-149 place-ish words, 150+ ordinary words
MR, IN, TO = 1, 2, 3


def make_sentence(g):
    words, tags = [], []
    n_parts = int(torch.randint(2, 5, (1,), generator=g))
    for _ in range(n_parts):
        kind = int(torch.randint(0, 3, (1,), generator=g))
        filler = torch.randint(150, VOCAB, (int(torch.randint(1, 3, (1,), generator=g)),), generator=g).tolist()
        words += filler
        tags += [0] * len(filler)
        span = int(torch.randint(1, 3, (1,), generator=g))
        # names and places share a pool of ambiguous words (10-149); the cue word decides the type
        ent = torch.randint(10, 150, (span,), generator=g).tolist()
        if kind == 0:
            words += [MR] + ent
            tags += [0, 1] + [2] * (span - 1)
        elif kind == 1:
            words += [int(torch.randint(IN, TO + 1, (1,), generator=g))] + ent
            tags += [0, 3] + [4] * (span - 1)
    return words[:16], tags[:16]


class NerDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = [make_sentence(g) for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        words, tags = self.items[i]
        pad = MAX_LEN - len(words)
        ids = torch.tensor(words + [PAD_ID] * pad)
        labels = torch.tensor(tags + [PAD_LABEL] * pad)
        return ids, labels, len(words)


class BiLSTMTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 64, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(64, 64, batch_first=True, bidirectional=True)
        self.out = nn.Linear(128, len(TAGS))

    def forward(self, ids):
        h, _ = self.lstm(self.emb(ids))
        return self.out(h)


train_loader = DataLoader(NerDataset(3000, seed=1), batch_size=32, shuffle=True)
val_ds = NerDataset(800, seed=2)
model = BiLSTMTagger()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
criterion = nn.CrossEntropyLoss()


def entity_scores():
    """Precision/recall/F1 on entity tags over the real (unpadded) words of the validation set."""
    model.eval()
    ids, labels, lengths = next(iter(DataLoader(val_ds, batch_size=len(val_ds))))
    with torch.no_grad():
        pred = model(ids).argmax(-1)
    model.train()
    real = torch.arange(MAX_LEN).unsqueeze(0) < lengths.unsqueeze(1)
    pred, gold = pred[real], labels[real]
    tp = ((pred == gold) & (gold != 0)).sum().item()
    fp = ((pred != gold) & (pred != 0)).sum().item()
    fn = ((pred != gold) & (gold != 0)).sum().item()
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return p, r, 2 * p * r / max(p + r, 1e-9)


for epoch in range(4):
    model.train()
    total_loss, correct, counted = 0.0, 0, 0
    for ids, labels, lengths in train_loader:
        logits = model(ids)
        loss = criterion(logits.reshape(-1, len(TAGS)), labels.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        scored = labels != -100
        correct += (logits.argmax(-1) == labels)[scored].sum().item()
        counted += scored.sum().item()
    p, r, f1 = entity_scores()
    print(f"epoch {epoch}  train loss {total_loss / len(train_loader):.4f}  train token acc {correct / counted:.3f}  "
          f"val entity P {p:.3f} R {r:.3f} F1 {f1:.3f}")
