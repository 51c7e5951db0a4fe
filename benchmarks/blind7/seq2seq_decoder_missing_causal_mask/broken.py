"""Date normalisation with a small nn.Transformer encoder-decoder.

Source strings come in three formats ("07 mar 2021", "mar 07 , 2021",
"07 / 03 / 2021") and the model must write them as "2021 - 03 - 07".
Trained with teacher forcing, evaluated with teacher forcing and with greedy
decoding (what the model is used for).
"""
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
SPECIALS = ["<pad>", "<bos>", "<eos>", "-", "/", ","]
VOCAB = SPECIALS + [str(d) for d in range(10)] + MONTHS
STOI = {t: i for i, t in enumerate(VOCAB)}
PAD, BOS, EOS = STOI["<pad>"], STOI["<bos>"], STOI["<eos>"]
SRC_LEN, TGT_LEN = 10, 11  # target: 10 characters + <eos>


def random_date():
    y = random.randint(1950, 2049)
    m = random.randint(1, 12)
    d = random.randint(1, 28)
    return y, m, d


def encode_source(y, m, d):
    dd, mm, yyyy = list(f"{d:02d}"), list(f"{m:02d}"), list(str(y))
    fmt = random.randint(0, 2)
    if fmt == 0:
        toks = dd + [MONTHS[m - 1]] + yyyy
    elif fmt == 1:
        toks = [MONTHS[m - 1]] + dd + [","] + yyyy
    else:
        toks = dd + ["/"] + mm + ["/"] + yyyy
    ids = [STOI[t] for t in toks]
    return ids + [PAD] * (SRC_LEN - len(ids))


def encode_target(y, m, d):
    toks = list(str(y)) + ["-"] + list(f"{m:02d}") + ["-"] + list(f"{d:02d}")
    return [STOI[t] for t in toks] + [EOS]


class DateDataset(Dataset):
    def __init__(self, n):
        self.items = []
        for _ in range(n):
            y, m, d = random_date()
            self.items.append((torch.tensor(encode_source(y, m, d)), torch.tensor(encode_target(y, m, d))))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Seq2SeqTransformer(nn.Module):
    def __init__(self, vocab, d_model=48, nhead=4, layers=2, ff=96, dropout=0.0):
        super().__init__()
        self.d_model = d_model
        self.src_emb = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.src_pos = nn.Embedding(SRC_LEN, d_model)
        self.tgt_pos = nn.Embedding(TGT_LEN, d_model)
        enc_layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout, batch_first=True)
        dec_layer = nn.TransformerDecoderLayer(d_model, nhead, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc_layer, layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec_layer, layers)
        self.out = nn.Linear(d_model, vocab)

    def forward(self, src, tgt_in):
        src_pad = src.eq(PAD)
        s = self.src_emb(src) * math.sqrt(self.d_model) + self.src_pos(torch.arange(src.size(1)))
        t = self.tgt_emb(tgt_in) * math.sqrt(self.d_model) + self.tgt_pos(torch.arange(tgt_in.size(1)))
        memory = self.encoder(s, src_key_padding_mask=src_pad)
        h = self.decoder(t, memory, memory_key_padding_mask=src_pad)
        return self.out(h)


def shift_right(tgt):
    bos = torch.full((tgt.size(0), 1), BOS, dtype=torch.long)
    return torch.cat([bos, tgt[:, :-1]], dim=1)


@torch.no_grad()
def greedy_decode(model, src):
    ys = torch.full((src.size(0), 1), BOS, dtype=torch.long)
    for _ in range(TGT_LEN):
        logits = model(src, ys)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        ys = torch.cat([ys, nxt], dim=1)
    return ys[:, 1:]


@torch.no_grad()
def evaluate(model, loader, criterion):
    model.eval()
    tot_loss, n, tok_ok, tok_n, exact = 0.0, 0, 0, 0, 0
    for src, tgt in loader:
        logits = model(src, shift_right(tgt))
        tot_loss += criterion(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1)).item() * src.size(0)
        tok_ok += (logits.argmax(-1) == tgt).sum().item()
        tok_n += tgt.numel()
        pred = greedy_decode(model, src)
        exact += (pred == tgt).all(dim=1).sum().item()
        n += src.size(0)
    return tot_loss / n, tok_ok / tok_n, exact / n


def main():
    train_ds, val_ds = DateDataset(2400), DateDataset(400)
    train_loader = DataLoader(train_ds, batch_size=48, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=200)

    model = Seq2SeqTransformer(len(VOCAB))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    for epoch in range(6):
        model.train()
        run_loss, seen = 0.0, 0
        for src, tgt in train_loader:
            logits = model(src, shift_right(tgt))
            loss = criterion(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run_loss += loss.item() * src.size(0)
            seen += src.size(0)
        val_loss, val_tok, val_exact = evaluate(model, val_loader, criterion)
        print(f"epoch {epoch}: train_loss {run_loss / seen:.4f}  val_loss {val_loss:.4f}  "
              f"val_token_acc(teacher-forced) {val_tok:.3f}  val_exact_match(greedy) {val_exact:.3f}")

    src, tgt = val_ds[0]
    pred = greedy_decode(model.eval(), src.unsqueeze(0))[0]
    show = lambda ids: " ".join(VOCAB[i] for i in ids if i not in (PAD, EOS))
    print(f"example: '{show(src.tolist())}' -> '{show(pred.tolist())}' (target '{show(tgt.tolist())}')")


if __name__ == "__main__":
    main()
