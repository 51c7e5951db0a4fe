"""Next-token language model built on nn.TransformerEncoder over synthetic token streams; the encoder is called without a causal (square subsequent) mask.

Training and validation loss are teacher-forced over whole windows; the
"prefix accuracy" check predicts each next token from the prefix only, the way
generation works.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)

VOCAB, SEQ, D = 16, 24, 32


def make_stream(n_tokens, seed):
    """Markov stream: next = (3 * prev + 1) % VOCAB with prob 0.8, else random."""
    g = torch.Generator().manual_seed(seed)
    toks = [0]
    rnd = torch.rand(n_tokens, generator=g)
    alt = torch.randint(0, VOCAB, (n_tokens,), generator=g)
    for i in range(1, n_tokens):
        toks.append((3 * toks[-1] + 1) % VOCAB if rnd[i] < 0.8 else int(alt[i]))
    return torch.tensor(toks)


def get_batch(stream, batch_size, g):
    ix = torch.randint(0, len(stream) - SEQ - 1, (batch_size,), generator=g)
    x = torch.stack([stream[i:i + SEQ] for i in ix])
    y = torch.stack([stream[i + 1:i + SEQ + 1] for i in ix])
    return x, y


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D)
        self.pos = nn.Embedding(SEQ, D)
        layer = nn.TransformerEncoderLayer(D, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.lm_head = nn.Linear(D, VOCAB)

    def forward(self, x):
        t = x.size(1)
        h = self.tok(x) + self.pos(torch.arange(t))
        h = self.encoder(h)
        return self.lm_head(h)


@torch.no_grad()
def prefix_accuracy(model, stream, n=200):
    """Predict token t+1 from tokens[..t] only (as during generation)."""
    model.eval()
    g = torch.Generator().manual_seed(7)
    x, y = get_batch(stream, n, g)
    correct = 0
    for t in range(4, SEQ):
        logits = model(x[:, :t + 1])[:, -1]
        correct += (logits.argmax(-1) == y[:, t]).sum().item()
    model.train()
    return correct / (n * (SEQ - 4))


train_stream = make_stream(20000, seed=1)
val_stream = make_stream(5000, seed=2)
g = torch.Generator().manual_seed(0)

model = TinyLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

for step in range(301):
    x, y = get_batch(train_stream, 32, g)
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        with torch.no_grad():
            model.eval()
            xv, yv = get_batch(val_stream, 64, torch.Generator().manual_seed(3))
            val_loss = F.cross_entropy(model(xv).reshape(-1, VOCAB), yv.reshape(-1)).item()
            model.train()
        print(f"step {step:3d}  train loss {loss.item():.4f}  val loss {val_loss:.4f}")

print(f"final val loss {val_loss:.4f}  prefix (generation-style) next-token acc {prefix_accuracy(model, val_stream):.3f}")
