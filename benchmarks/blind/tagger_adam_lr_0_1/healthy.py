"""BiLSTM sequence tagger (NER-style) trained with Adam at lr=0.005."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

vocab, n_tags, seq = 300, 7, 14
tag_of_word = torch.randint(0, n_tags, (vocab,))
words = torch.randint(0, vocab, (2000, seq))
# the tag depends on the word and on the previous word
previous = torch.cat([torch.zeros(2000, 1, dtype=torch.long), tag_of_word[words[:, :-1]]], 1)
tags = (tag_of_word[words] + previous) % n_tags


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(vocab, 100)
        self.lstm = nn.LSTM(100, 64, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(128, n_tags)

    def forward(self, w):
        h, _ = self.lstm(self.emb(w))
        return self.proj(h)


model = Tagger()
optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
criterion = nn.CrossEntropyLoss()

step = 0
for epoch in range(5):
    perm = torch.randperm(1600)
    for s in range(0, 1600, 32):
        idx = perm[s:s + 32]
        optimizer.zero_grad()
        loss = criterion(model(words[idx]).reshape(-1, n_tags), tags[idx].reshape(-1))
        loss.backward()
        optimizer.step()
        step += 1
        if step % 25 == 0:
            print(f"step {step} train loss:{loss.item():.5f}")
    with torch.no_grad():
        acc = (model(words[1600:]).argmax(-1) == tags[1600:]).float().mean().item()
    print(f"epoch {epoch} acc {acc:.3f}")
