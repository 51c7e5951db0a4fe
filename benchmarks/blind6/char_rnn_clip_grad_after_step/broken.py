"""Char-level RNN language model: clip_grad_norm_ is called after optimizer.step(), so no update is clipped.

The recipe follows the PyTorch word_language_model example: an Elman RNN (tanh) trained with plain
SGD at a large learning rate, made safe by clipping the gradient norm to 0.25. The corpus is synthetic English-like text
from a small random grammar; bits per character on held-out text are reported.
"""
import math
import random

import torch
import torch.nn as nn

torch.manual_seed(0)
random.seed(0)

SUBJ = ["the cat", "a dog", "my old friend", "the teacher", "our neighbour", "the small bird", "a tired man"]
VERB = ["sees", "likes", "finds", "watches", "follows", "visits", "calls"]
OBJ = ["the red ball", "a quiet house", "the river", "her brother", "the market", "a green tree", "the station"]
ADV = ["today", "again", "at night", "in the morning", "very often", "every day", "with care"]


def sentence():
    s = f"{random.choice(SUBJ)} {random.choice(VERB)} {random.choice(OBJ)}"
    if random.random() < 0.6:
        s += " " + random.choice(ADV)
    return s + ". "


train_text = "".join(sentence() for _ in range(4000))
val_text = "".join(sentence() for _ in range(400))
chars = sorted(set(train_text + val_text))
stoi = {c: i for i, c in enumerate(chars)}
train_ids = torch.tensor([stoi[c] for c in train_text])
val_ids = torch.tensor([stoi[c] for c in val_text])
V = len(chars)

SEQ, BATCH, CLIP, LR = 48, 32, 0.25, 4.0


class CharLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 64)
        self.rnn = nn.RNN(64, 128, nonlinearity="tanh", batch_first=True)
        self.out = nn.Linear(128, V)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)


def batch(ids):
    starts = torch.randint(0, len(ids) - SEQ - 1, (BATCH,))
    x = torch.stack([ids[s:s + SEQ] for s in starts])
    y = torch.stack([ids[s + 1:s + SEQ + 1] for s in starts])
    return x, y


def evaluate(model):
    model.eval()
    n = (len(val_ids) - 1) // SEQ
    x = val_ids[:n * SEQ].view(n, SEQ)
    y = val_ids[1:n * SEQ + 1].view(n, SEQ)
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)).item()
    model.train()
    return loss / math.log(2)


model = CharLM()
opt = torch.optim.SGD(model.parameters(), lr=LR)
crit = nn.CrossEntropyLoss()
print(f"vocab {V}  train chars {len(train_ids)}  uniform bpc {math.log2(V):.2f}")

running, max_norm = 0.0, 0.0
for step in range(1, 201):
    x, y = batch(train_ids)
    logits = model(x)
    loss = crit(logits.reshape(-1, V), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    running += loss.item()
    max_norm = max(max_norm, norm.item())
    if step % 25 == 0:
        print(f"step {step:3d}  train loss {running / 25:.3f}  max grad norm {max_norm:7.2f}  val bpc {evaluate(model):.3f}")
        running, max_norm = 0.0, 0.0
