# expect: slow_step
"""A small GRU language model trained on a token stream, chunk by chunk.

Instead of carrying the hidden state from chunk to chunk (detached), the loop keeps the whole
history and feeds it to the model again at every step, so each step runs the GRU over more
tokens than the one before.
"""
import torch
from torch import nn

torch.manual_seed(5)
vocab = 12
# A random walk over the tokens: every token equally frequent, the next one predictable in part.
moves = torch.tensor([1, 3])[torch.randint(0, 2, (8000,))]
data = torch.cumsum(moves, 0) % vocab


class TokenModel(nn.Module):
    def __init__(self, vocab: int, hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.rnn = nn.GRU(16, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x):
        y, h = self.rnn(self.embed(x))
        return self.out(y), h


model = TokenModel(vocab)
optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
loss_fn = nn.CrossEntropyLoss()
chunk, batch = 12, 8
stream = data[: (len(data) // batch) * batch].view(batch, -1)

context = stream[:, :0]
for step in range(80):
    start = (step * chunk) % (stream.size(1) - chunk - 1)
    x = stream[:, start:start + chunk]
    y = stream[:, start + 1:start + chunk + 1]
    context = torch.cat([context, x], dim=1)  # the bug: re-reads the whole history; carry hidden.detach() instead
    optimizer.zero_grad()
    logits, _ = model(context)
    loss = loss_fn(logits[:, -chunk:].reshape(-1, vocab), y.reshape(-1))
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(f"step {step}: loss {loss.item():.3f}, context {context.size(1)} tokens")
