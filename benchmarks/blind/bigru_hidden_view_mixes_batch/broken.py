"""Sentence encoder with a bidirectional GRU (batch_first=True): the final hidden state, shaped
(num_directions, batch, hidden), is flattened with .view(batch, -1), which interleaves different sentences."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

vocab, seq, n_classes = 100, 12, 3
word_class = torch.randint(0, n_classes, (vocab,))
sentences = torch.randint(0, vocab, (2000, seq))
label = torch.stack([(word_class[sentences] == c).sum(1) for c in range(n_classes)], 1).argmax(1)


class Encoder(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.hidden = hidden
        self.embedding = nn.Embedding(vocab, 32)
        self.rnn = nn.GRU(32, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, x):
        batch_size = x.size(0)
        _, hidden = self.rnn(self.embedding(x))
        hidden = hidden.view(batch_size, self.hidden * 2)
        return self.out(hidden)


model = Encoder()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(4):
    perm = torch.randperm(1600)
    total = 0.0
    for s in range(0, 1600, 32):
        idx = perm[s:s + 32]
        optimizer.zero_grad()
        loss = criterion(model(sentences[idx]), label[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(sentences[1600:]).argmax(1) == label[1600:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 1600:.4f} val acc {acc:.3f}")
