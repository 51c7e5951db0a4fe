# expect: memory_growth
"""A small transformer encoder classifying token sequences; the loss history is kept as tensors.

`losses.append(loss)` keeps every step's loss tensor, and with it that step's autograd graph, so
memory grows for as long as the run does.
"""
import torch
from torch import nn

torch.manual_seed(11)
vocab, seq, classes = 50, 12, 3


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(32, classes)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)).mean(1))


tokens = torch.randint(0, vocab, (4096, seq))
labels = torch.stack([(tokens // 17 == c).sum(1) for c in range(classes)], 1).argmax(1)  # most frequent token group
model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()

losses = []
for step in range(200):
    idx = torch.randint(0, len(tokens), (16,))
    optimizer.zero_grad()
    loss = loss_fn(model(tokens[idx]), labels[idx])
    loss.backward()
    optimizer.step()
    losses.append(loss)  # the bug: keeps the tensor and its graph, not the number
    if step % 50 == 49:
        print(f"step {step + 1}: mean loss {torch.stack(losses[-50:]).mean().item():.3f}")
