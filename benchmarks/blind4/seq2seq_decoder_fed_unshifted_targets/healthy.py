"""Encoder-decoder Transformer (sequence reversal) trained with the decoder fed the right-shifted target (BOS + target[:-1])."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

PAD, BOS, EOS = 0, 1, 2
VOCAB, L = 20, 8
N_TRAIN, N_VAL = 3000, 300


def make_data(n, g):
    src = torch.randint(3, VOCAB, (n, L), generator=g)
    body = src.flip(1)  # target: the source reversed
    tgt = torch.cat([torch.full((n, 1), BOS), body, torch.full((n, 1), EOS)], 1)
    return src, tgt


g = torch.Generator().manual_seed(1)
src_tr, tgt_tr = make_data(N_TRAIN, g)
src_va, tgt_va = make_data(N_VAL, g)


class Seq2Seq(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(L + 2, d)
        self.tf = nn.Transformer(d, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                 dim_feedforward=128, dropout=0.0, batch_first=True)
        self.out = nn.Linear(d, VOCAB)

    def embed(self, x):
        return self.emb(x) + self.pos(torch.arange(x.shape[1]))

    def forward(self, src, dec_in):
        mask = nn.Transformer.generate_square_subsequent_mask(dec_in.shape[1])
        h = self.tf(self.embed(src), self.embed(dec_in), tgt_mask=mask, tgt_is_causal=True)
        return self.out(h)


model = Seq2Seq()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def teacher_forcing_batch(tgt):
    dec_in = tgt[:, :-1]
    labels = tgt[:, 1:]
    return dec_in, labels


@torch.no_grad()
def greedy(src):
    ys = torch.full((src.shape[0], 1), BOS)
    for _ in range(L + 1):
        logits = model(src, ys)
        ys = torch.cat([ys, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ys[:, 1:]


@torch.no_grad()
def evaluate():
    model.eval()
    dec_in, labels = teacher_forcing_batch(tgt_va)
    tf_loss = F.cross_entropy(model(src_va, dec_in).reshape(-1, VOCAB), labels.reshape(-1)).item()
    pred = greedy(src_va)
    gold = tgt_va[:, 1:]
    tok_acc = (pred == gold).float().mean().item()
    seq_acc = (pred == gold).all(1).float().mean().item()
    model.train()
    return tf_loss, tok_acc, seq_acc


BATCH, EPOCHS = 64, 6
for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    for i in range(0, N_TRAIN, BATCH):
        idx = perm[i:i + BATCH]
        dec_in, labels = teacher_forcing_batch(tgt_tr[idx])
        logits = model(src_tr[idx], dec_in)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    tf_loss, tok_acc, seq_acc = evaluate()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_teacher_forced_loss {tf_loss:.4f} "
          f"val_greedy_token_acc {tok_acc:.3f} val_greedy_exact_match {seq_acc:.3f}")
