"""CTC recogniser for digit strings (meter readings); characters are encoded as ALPHABET.index(c) + 1, keeping class 0 for nn.CTCLoss's blank."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

ALPHABET = "0123456789"
BLANK = 0
NUM_CLASSES = len(ALPHABET) + 1            # + blank


def encode(text):
    return [ALPHABET.index(c) + 1 for c in text]


def decode(ids):
    out, prev = [], None
    for i in ids:
        if i != prev and i != BLANK:
            out.append(ALPHABET[i - 1])
        prev = i
    return "".join(out)


# ---- synthetic "line images": each digit is drawn as 3-5 columns of a 16-dim glyph, plus noise ----
g = torch.Generator().manual_seed(1)
FEAT, T_MAX = 16, 40
glyphs = torch.randn(10, FEAT, generator=g)


def make_lines(n):
    texts, frames = [], torch.zeros(n, T_MAX, FEAT)
    for k in range(n):
        length = int(torch.randint(3, 7, (1,), generator=g))
        text = "".join(str(int(d)) for d in torch.randint(0, 10, (length,), generator=g))
        t = int(torch.randint(0, 3, (1,), generator=g))
        for ch in text:
            w = int(torch.randint(3, 6, (1,), generator=g))
            frames[k, t:t + w] = glyphs[int(ch)]
            t += w + int(torch.randint(0, 2, (1,), generator=g))
        texts.append(text)
    return frames + 0.5 * torch.randn(frames.shape, generator=g), texts


x_train, t_train = make_lines(3000)
x_val, t_val = make_lines(800)


class LineRecognizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(FEAT, 48, 5, padding=2), nn.ReLU(), nn.Conv1d(48, 48, 5, padding=2), nn.ReLU())
        self.out = nn.Linear(48, NUM_CLASSES)

    def forward(self, x):                                   # x: (N, T, F)
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return F.log_softmax(self.out(h), dim=2)            # (N, T, C)


model = LineRecognizer()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
ctc = nn.CTCLoss(blank=BLANK)
for epoch in range(6):
    model.train()
    perm = torch.randperm(len(t_train))
    tot, nb = 0.0, 0
    for s in range(0, len(perm), 32):
        idx = perm[s:s + 32].tolist()
        targets = torch.tensor([c for i in idx for c in encode(t_train[i])])
        target_lengths = torch.tensor([len(t_train[i]) for i in idx])
        log_probs = model(x_train[idx]).transpose(0, 1)     # (T, N, C) for CTCLoss
        input_lengths = torch.full((len(idx),), T_MAX, dtype=torch.long)
        loss = ctc(log_probs, targets, input_lengths, target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        best = model(x_val).argmax(2)
        preds = [decode(row.tolist()) for row in best]
    exact = sum(p == t for p, t in zip(preds, t_val)) / len(t_val)
    zeros_true = sum(t.count("0") for t in t_val)
    zeros_read = sum(min(p.count("0"), t.count("0")) for p, t in zip(preds, t_val))
    print(f"epoch {epoch} ctc_loss {tot / nb:.4f} val_exact_match {exact:.3f} val_zero_digits_read {zeros_read}/{zeros_true}")
