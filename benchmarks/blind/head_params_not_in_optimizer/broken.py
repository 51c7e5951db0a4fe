"""Token tagger whose optimizer is built from hand-made parameter groups (encoder, fusion); the classifier's group is
built but never appended to the list passed to the optimizer."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

vocab, n_tags, seq = 200, 5, 12
tag_of_word = torch.randint(0, n_tags, (vocab,))
tokens = torch.randint(0, vocab, (3000, seq))
tags = tag_of_word[tokens]


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.encoder = nn.GRU(32, 48, batch_first=True, bidirectional=True)
        self.fusion = nn.Linear(96, 64)
        self.fc = nn.Linear(64, n_tags)

    def forward(self, t):
        h, _ = self.encoder(self.embed(t))
        return self.fc(torch.relu(self.fusion(h)))


model = Tagger()
parameters = []
params = {"lr": 1e-3, "params": []}
for name, param in model.named_parameters():
    if name.startswith("embed") or name.startswith("encoder"):
        params["params"].append(param)
parameters.append(params)
params = {"lr": 3e-3, "params": []}
for name, param in model.named_parameters():
    if name.startswith("fusion"):
        params["params"].append(param)
parameters.append(params)
params = {"lr": 3e-3, "params": []}
for name, param in model.named_parameters():
    if name.startswith("fc"):
        params["params"].append(param)
optimizer = torch.optim.AdamW(parameters)
criterion = nn.CrossEntropyLoss()

for epoch in range(4):
    perm = torch.randperm(len(tokens))
    total, correct = 0.0, 0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        logits = model(tokens[idx])
        loss = criterion(logits.reshape(-1, n_tags), tags[idx].reshape(-1))
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += (logits.argmax(-1) == tags[idx]).sum().item()
    print(f"epoch {epoch} loss {total / len(perm):.4f} token acc {correct / tags.numel():.3f}")
