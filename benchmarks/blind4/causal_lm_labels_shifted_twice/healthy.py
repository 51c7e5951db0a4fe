"""Tiny GPT-style LM trained with labels = input_ids, so the model's internal shift gives proper next-token training."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

VOCAB, SEQ, N_TRAIN, N_VAL = 48, 33, 1600, 300


def make_corpus(n, g):
    # order-1 Markov source: the next token is succ[cur] 85% of the time, else uniform
    seqs = torch.empty(n, SEQ, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(1, SEQ):
        follow = torch.rand(n, generator=g) < 0.85
        rnd = torch.randint(0, VOCAB, (n,), generator=g)
        seqs[:, t] = torch.where(follow, SUCC[seqs[:, t - 1]], rnd)
    return seqs


g = torch.Generator().manual_seed(1)
SUCC = torch.randperm(VOCAB, generator=g)
train_seqs = make_corpus(N_TRAIN, g)
val_seqs = make_corpus(N_VAL, g)


def make_example(seq):
    input_ids = seq[:-1]
    labels = seq[:-1]
    return input_ids, labels


class TinyGPT(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, input_ids, labels=None):
        T = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(T))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        x = self.blocks(x, mask=mask, is_causal=True)
        logits = self.head(self.ln(x))
        loss = None
        if labels is not None:
            # shift so that tokens < n predict n (as in GPT2LMHeadModel)
            shift_logits = logits[:, :-1].reshape(-1, VOCAB)
            shift_labels = labels[:, 1:].reshape(-1)
            loss = F.cross_entropy(shift_logits, shift_labels)
        return logits, loss


model = TinyGPT()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

pairs = [make_example(s) for s in train_seqs]
X = torch.stack([p[0] for p in pairs])
Y = torch.stack([p[1] for p in pairs])
BATCH, EPOCHS = 32, 4
P_FOLLOW, P_OTHER = 0.85 + 0.15 / VOCAB, 0.15 / VOCAB
ENTROPY = -P_FOLLOW * math.log(P_FOLLOW) - (VOCAB - 1) * P_OTHER * math.log(P_OTHER)


@torch.no_grad()
def evaluate():
    model.eval()
    inp = val_seqs[:, :-1]
    logits, _ = model(inp)
    pred = logits.argmax(-1)            # prediction at position t is for token t+1
    acc = (pred == val_seqs[:, 1:]).float().mean().item()
    nll = F.cross_entropy(logits.reshape(-1, VOCAB), val_seqs[:, 1:].reshape(-1)).item()
    model.train()
    return acc, nll


for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    for i in range(0, N_TRAIN, BATCH):
        idx = perm[i:i + BATCH]
        _, loss = model(X[idx], labels=Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    acc, nll = evaluate()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_next_token_acc {acc:.3f} val_next_token_nll {nll:.3f} "
          f"(entropy floor of the source {ENTROPY:.3f})")
