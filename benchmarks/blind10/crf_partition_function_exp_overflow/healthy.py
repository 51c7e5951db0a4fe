"""BiGRU-CRF exon/intron tagger whose CRF partition function uses torch.logsumexp (max-shifted).

Gene-structure tagging of DNA windows (40 bases): each base is tagged intergenic, exon or intron.
A bidirectional GRU gives emission scores and a linear-chain CRF on top gives the sequence
likelihood. The forward algorithm computes log Z as torch.log(torch.exp(...).sum()) at every
position instead of a log-sum-exp with the max subtracted. The forward variable grows with the
length of the sequence times the emission scale; once the model gets confident, exp() overflows
to inf, the loss becomes inf and the gradients NaN.
"""
import random

import numpy as np
import torch
import torch.nn as nn

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

T, K = 40, 3  # bases per window, tags: 0 intergenic, 1 exon, 2 intron
BASE_P = np.array([[0.25, 0.25, 0.25, 0.25],   # intergenic
                   [0.10, 0.40, 0.40, 0.10],   # exon, GC rich
                   [0.40, 0.10, 0.10, 0.40]])  # intron, AT rich
TRANS = np.array([[0.93, 0.07, 0.00],
                  [0.04, 0.88, 0.08],
                  [0.00, 0.10, 0.90]])


def make_windows(n, rng):
    tags = np.zeros((n, T), dtype=np.int64)
    bases = np.zeros((n, T), dtype=np.int64)
    for i in range(n):
        s = rng.integers(K)
        for t in range(T):
            if t > 0:
                s = rng.choice(K, p=TRANS[s])
            tags[i, t] = s
            bases[i, t] = rng.choice(4, p=BASE_P[s])
        # splice signals: GT after an exon->intron switch, AG before intron->exon
        for t in range(1, T - 1):
            if tags[i, t - 1] == 1 and tags[i, t] == 2:
                bases[i, t], bases[i, t + 1] = 2, 3
            if tags[i, t] == 2 and tags[i, t + 1] == 1:
                bases[i, t - 1], bases[i, t] = 0, 2
    return torch.from_numpy(bases), torch.from_numpy(tags)


class BiGRUCRF(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(4, 16)
        self.gru = nn.GRU(16, 32, batch_first=True, bidirectional=True)
        self.out = nn.Linear(64, K)
        self.trans = nn.Parameter(torch.zeros(K, K))
        self.start = nn.Parameter(torch.zeros(K))

    def emissions(self, x):
        h, _ = self.gru(self.emb(x))
        return self.out(h)  # (B, T, K)

    def log_partition(self, em):
        alpha = self.start + em[:, 0]  # (B, K)
        for t in range(1, em.shape[1]):
            scores = alpha.unsqueeze(2) + self.trans.unsqueeze(0)  # (B, from, to)
            alpha = torch.logsumexp(scores, dim=1) + em[:, t]
        return torch.logsumexp(alpha, dim=1)

    def gold_score(self, em, y):
        s = self.start[y[:, 0]] + em.gather(2, y.unsqueeze(2)).squeeze(2).sum(1)
        return s + self.trans[y[:, :-1], y[:, 1:]].sum(1)

    def nll(self, x, y):
        em = self.emissions(x)
        return (self.log_partition(em) - self.gold_score(em, y)).mean()

    @torch.no_grad()
    def viterbi(self, x):
        em = self.emissions(x)
        score = self.start + em[:, 0]
        back = []
        for t in range(1, em.shape[1]):
            s = score.unsqueeze(2) + self.trans.unsqueeze(0)
            score, idx = s.max(dim=1)
            score = score + em[:, t]
            back.append(idx)
        best = score.argmax(1)
        path = [best]
        for idx in reversed(back):
            best = idx.gather(1, best.unsqueeze(1)).squeeze(1)
            path.append(best)
        return torch.stack(path[::-1], 1)


rng = np.random.default_rng(SEED)
Xtr, Ytr = make_windows(2400, rng)
Xva, Yva = make_windows(400, rng)
model = BiGRUCRF()
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
BATCH, EPOCHS = 32, 8
step, first_bad, last_loss = 0, None, float("nan")
print(f"train windows {len(Xtr)}, val windows {len(Xva)}, {T} bases, tag shares "
      f"{np.bincount(Yva.flatten().numpy(), minlength=K) / Yva.numel()}")
for epoch in range(EPOCHS):
    model.train()
    perm = torch.randperm(len(Xtr))
    tot, n, nonfinite = 0.0, 0, 0
    for i in range(0, len(Xtr), BATCH):
        idx = perm[i:i + BATCH]
        loss = model.nll(Xtr[idx], Ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if not torch.isfinite(loss):
            nonfinite += 1
            if first_bad is None:
                first_bad = step
                print(f"  step {step}: loss {loss.item()} (last finite loss {last_loss:.2f})")
        else:
            last_loss = loss.item()
        tot += loss.item() * len(idx)
        n += len(idx)
    model.eval()
    with torch.no_grad():
        val_nll = model.nll(Xva, Yva).item()
        pred = model.viterbi(Xva)
    acc = (pred == Yva).float().mean().item()
    exon_rec = ((pred == 1) & (Yva == 1)).sum().item() / max(1, (Yva == 1).sum().item())
    print(f"epoch {epoch}: train nll/window {tot / n:.3f} (non-finite steps {nonfinite}), "
          f"val nll/window {val_nll:.3f}, val tag acc {acc:.3f}, exon recall {exon_rec:.3f}")
