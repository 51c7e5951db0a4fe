# expect: batch_mixing
"""A small transformer classifier fed (batch, seq, features) into an encoder built with the default batch_first=False."""
import torch
import torch.nn as nn


class SeqClassifier(nn.Module):
    def __init__(self, d_in=8, d_model=32, classes=3):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=64, dropout=0.1)  # the bug: batch_first=False
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x):  # x: (batch, seq, features)
        h = self.encoder(self.proj(x))
        return self.head(h.mean(dim=1))


torch.manual_seed(0)
X = torch.randn(480, 12, 8)
Y = X[:, :, :3].sum(dim=1).argmax(dim=1)
model = SeqClassifier()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for epoch in range(1):
    model.train()
    for i in range(0, len(X), 40):
        out = model(X[i:i + 40])
        loss = nn.functional.cross_entropy(out, Y[i:i + 40])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(epoch, loss.item())
