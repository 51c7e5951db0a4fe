"""Text-regression head on pooled embeddings: the head squeezes its output to shape [B] and the targets of shape
[B, 1] are squeezed to match before nn.MSELoss."""
import warnings

import torch
import torch.nn as nn

warnings.simplefilter("once")
torch.manual_seed(0)
torch.set_num_threads(1)

vocab, seq = 500, 20
word_score = torch.randn(vocab)
docs = torch.randint(0, vocab, (4000, seq))
scores = (word_score[docs].mean(1) * 4 + 8).unsqueeze(1)   # labels range roughly 0..16, shape [N, 1]


class RegressionHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, 64, mode="mean")
        self.ff = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, tokens):
        return self.ff(self.embed(tokens)).squeeze(-1)


model = RegressionHead()
loss_fct = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

for epoch in range(5):
    perm = torch.randperm(len(docs))
    total = 0.0
    for s in range(0, len(perm), 32):
        idx = perm[s:s + 32]
        optimizer.zero_grad()
        logits = model(docs[idx])
        loss = loss_fct(logits, scores[idx].squeeze(-1))
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        pred = model(docs)
        mse = ((pred - scores.squeeze(1)) ** 2).mean().item()
    print(f"epoch {epoch} train loss {total / len(perm):.3f} true mse {mse:.3f} pred std {pred.std().item():.3f}")
