"""LSTM intent classifier on variable-length token sequences that sorts each batch by length for pack_padded_sequence but never restores the original order."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

torch.manual_seed(0)
torch.set_num_threads(1)

VOCAB, MAXLEN, N_CLASSES, N_TRAIN, N_VAL = 50, 20, 4, 4000, 800
g = torch.Generator().manual_seed(1)
keywords = torch.arange(1, 1 + N_CLASSES * 3).view(N_CLASSES, 3)  # 3 keyword tokens per intent


def make_utterances(n):
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    lengths = torch.randint(4, MAXLEN + 1, (n,), generator=g)
    toks = torch.randint(1 + N_CLASSES * 3, VOCAB, (n, MAXLEN), generator=g)
    pos = (torch.rand(n, generator=g) * lengths).long()
    toks[torch.arange(n), pos] = keywords[y, torch.randint(0, 3, (n,), generator=g)]
    toks[torch.arange(MAXLEN)[None, :] >= lengths[:, None]] = 0  # padding
    return toks, lengths, y


x_tr, len_tr, y_tr = make_utterances(N_TRAIN)
x_va, len_va, y_va = make_utterances(N_VAL)


class LSTMClassifier(nn.Module):
    def __init__(self, d=32, h=64):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=0)
        self.lstm = nn.LSTM(d, h, batch_first=True)
        self.head = nn.Linear(h, N_CLASSES)

    def forward(self, toks, lengths):
        lengths_sorted, order = lengths.sort(descending=True)
        packed = pack_padded_sequence(self.emb(toks[order]), lengths_sorted, batch_first=True)
        _, (h_n, _) = self.lstm(packed)
        h_last = h_n[-1]
        return self.head(h_last)


model = LSTMClassifier()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
BATCH, EPOCHS = 64, 6

for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    for s in range(0, N_TRAIN, BATCH):
        idx = perm[s:s + BATCH]
        loss = F.cross_entropy(model(x_tr[idx], len_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    with torch.no_grad():
        correct = 0
        for s in range(0, N_VAL, 200):
            logits = model(x_va[s:s + 200], len_va[s:s + 200])
            correct += (logits.argmax(1) == y_va[s:s + 200]).sum().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_acc {correct / N_VAL:.3f}")
