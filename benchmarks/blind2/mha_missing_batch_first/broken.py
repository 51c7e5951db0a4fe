"""Token-majority classifier with a small attention encoder; nn.MultiheadAttention is built with its default batch_first=False but fed (batch, seq, dim) tensors.

A [CLS] token is prepended to each sequence of A/B tokens; the label is whether
A outnumbers B.  The encoder block reads the [CLS] position after self-attention.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

VOCAB = 4          # 0 = PAD (unused), 1 = CLS, 2 = A, 3 = B
SEQ_LEN = 16


class MajorityDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        toks = torch.randint(2, 4, (n, SEQ_LEN), generator=g)
        self.x = torch.cat([torch.ones(n, 1, dtype=torch.long), toks], dim=1)
        self.y = ((toks == 2).sum(1) > (toks == 3).sum(1)).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class EncoderBlock(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=0.0)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x):
        a, _ = self.attn(x, x, x)
        x = self.norm1(x + a)
        return self.norm2(x + self.ff(x))


class Classifier(nn.Module):
    def __init__(self, d_model=32, n_heads=4):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.randn(SEQ_LEN + 1, d_model) * 0.02)
        self.block = EncoderBlock(d_model, n_heads)
        self.head = nn.Linear(d_model, 2)

    def forward(self, x):                       # x: (batch, seq)
        h = self.tok(x) + self.pos              # (batch, seq, d_model)
        h = self.block(h)
        return self.head(h[:, 0])               # read out the [CLS] position


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    model.train()
    return correct / total


train_loader = DataLoader(MajorityDataset(4000, seed=1), batch_size=64, shuffle=True)
val_loader = DataLoader(MajorityDataset(1000, seed=2), batch_size=250)

model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

step = 0
for epoch in range(6):
    for x, y in train_loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
        step += 1
    print(f"epoch {epoch}  val acc {evaluate(model, val_loader):.3f}")

print(f"final val acc {evaluate(model, val_loader):.3f}")
