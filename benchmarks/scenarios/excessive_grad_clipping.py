# expect: excessive_grad_clipping
"""An LSTM sequence classifier trained with SGD, clipping the gradient norm to a tiny value."""
import torch
from torch import nn

torch.manual_seed(0)
seqs = torch.randn(1024, 20, 6)
labels = (seqs[:, :, 0].mean(1) > 0).long() + (seqs[:, -5:, 1].mean(1) > 0).long()


class SeqClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 48, batch_first=True)
        self.fc = nn.Linear(48, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


model = SeqClassifier()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for step in range(120):
    idx = torch.randint(0, 1024, (64,))
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(seqs[idx]), labels[idx])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.001)  # the bug: 0.001, meant 1.0
    optimizer.step()
print(loss.item())
