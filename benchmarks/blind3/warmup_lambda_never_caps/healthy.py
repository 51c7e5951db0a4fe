"""Transformer-encoder review classifier trained with AdamW and a linear learning-rate warmup through LambdaLR; FIXED: the warmup lambda returns min(1.0, current_step / warmup_steps), so the multiplier stays at 1 after warmup.

LambdaLR multiplies the base learning rate by whatever the lambda returns, so
the learning rate rises linearly for the whole run instead of levelling off
at the base value after 20 warmup steps.
"""
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

VOCAB, SEQ, D_MODEL = 100, 24, 64
POSITIVE, NEGATIVE = list(range(10, 20)), list(range(20, 30))
BASE_LR, WARMUP_STEPS = 2e-3, 20


def make_reviews(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(30, VOCAB, (n, SEQ), generator=g)
    n_pos = torch.randint(0, 6, (n,), generator=g)
    n_neg = torch.randint(0, 6, (n,), generator=g)
    n_neg[n_neg == n_pos] += 1
    for i in range(n):
        slots = torch.randperm(SEQ, generator=g)[: int(n_pos[i] + n_neg[i])]
        words = [POSITIVE[j % 10] for j in torch.randint(0, 10, (int(n_pos[i]),), generator=g).tolist()]
        words += [NEGATIVE[j % 10] for j in torch.randint(0, 10, (int(n_neg[i]),), generator=g).tolist()]
        tokens[i, slots] = torch.tensor(words, dtype=torch.long)
    return tokens, (n_pos > n_neg).long()


class ReviewTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D_MODEL)
        self.pos = nn.Parameter(torch.randn(1, SEQ, D_MODEL) * 0.02)
        layer = nn.TransformerEncoderLayer(D_MODEL, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(D_MODEL, 2)

    def forward(self, x):
        h = self.encoder(self.tok(x) + self.pos)
        return self.head(h.mean(dim=1))


x_tr, y_tr = make_reviews(2400, seed=1)
x_va, y_va = make_reviews(1000, seed=2)
loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)

model = ReviewTransformer()
optimizer = torch.optim.AdamW(model.parameters(), lr=BASE_LR, weight_decay=0.01)


def warmup_lambda(current_step):
    return min(1.0, current_step / WARMUP_STEPS)


scheduler = LambdaLR(optimizer, lr_lambda=warmup_lambda)
criterion = nn.CrossEntropyLoss()


def evaluate():
    model.eval()
    with torch.no_grad():
        logits = model(x_va)
    model.train()
    return criterion(logits, y_va).item(), (logits.argmax(1) == y_va).float().mean().item()


for epoch in range(8):
    model.train()
    running = 0.0
    for xb, yb in loader:
        loss = criterion(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.item()
    val_loss, val_acc = evaluate()
    print(f"epoch {epoch}  lr {scheduler.get_last_lr()[0]:.2e}  train loss {running / len(loader):.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")
