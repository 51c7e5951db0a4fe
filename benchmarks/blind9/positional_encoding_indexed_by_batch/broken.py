"""Predict whether a web-shop session converts from its sequence of click events with a small Transformer encoder.

Each session is 16 events (page view, search, review, add-to-cart, ...). Whether the session ends in a
purchase depends on which events occur and on their order (reading reviews *before* adding to cart,
returning to the cart after a coupon page). The encoder uses batch_first tensors and the sinusoidal
PositionalEncoding module from the PyTorch tutorial.
"""
import math
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
torch.set_num_threads(1)

EVENTS = ["pad", "home", "search", "category", "product", "review", "coupon", "cart",
          "wishlist", "checkout_start", "help", "account", "logout"]
V = len(EVENTS)
T = 16
E = {name: i for i, name in enumerate(EVENTS)}


def make_sessions(n, rng):
    """Synthetic click sessions and conversion labels."""
    x = rng.integers(1, V, size=(n, T))
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        s = x[i]
        # plant a review and a cart event in random order in most sessions
        a, b = rng.choice(T, size=2, replace=False)
        s[a], s[b] = E["review"], E["cart"]
        if rng.random() < 0.5:
            c = rng.integers(0, T)
            s[c] = E["coupon"]
        first_review = np.argmax(s == E["review"])
        first_cart = np.argmax(s == E["cart"])
        last_cart = T - 1 - np.argmax(s[::-1] == E["cart"])
        coupon_pos = np.where(s == E["coupon"])[0]
        informed = first_review < first_cart
        coupon_back = len(coupon_pos) > 0 and coupon_pos[0] < last_cart
        engaged = (s == E["product"]).sum() >= 2
        score = 2.0 * informed + 1.0 * coupon_back + 1.0 * engaged - 1.5
        p = 1.0 / (1.0 + math.exp(-4.0 * score))
        y[i] = int(rng.random() < p)
    return torch.tensor(x), torch.tensor(y)


rng = np.random.default_rng(SEED)
x_train, y_train = make_sessions(4000, rng)
x_val, y_val = make_sessions(1500, rng)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=512):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


class SessionTransformer(nn.Module):
    def __init__(self, vocab, d_model=32, nhead=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=64, dropout=0.1,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, 2)
        self.d_model = d_model

    def forward(self, tokens):
        h = self.embed(tokens) * math.sqrt(self.d_model)
        h = self.pos(h)
        h = self.encoder(h)
        return self.head(h.mean(dim=1))


model = SessionTransformer(V)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
criterion = nn.CrossEntropyLoss()


def evaluate(loader):
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for xb, yb in loader:
            logits = model(xb)
            loss_sum += criterion(logits, yb).item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(yb)
    return loss_sum / total, correct / total


EPOCHS = 12
for epoch in range(EPOCHS):
    model.train()
    running, seen = 0.0, 0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * len(yb)
        seen += len(yb)
    val_loss, val_acc = evaluate(val_loader)
    if epoch % 3 == 2 or epoch == 0:
        print(f"epoch {epoch:2d}  train loss {running / seen:.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")

base_rate = max(y_val.float().mean().item(), 1 - y_val.float().mean().item())
val_loss, val_acc = evaluate(val_loader)
print(f"final: val loss {val_loss:.4f}  val acc {val_acc:.3f}  (majority class {base_rate:.3f})")

# serving check: score the first 400 validation sessions one request at a time
model.eval()
with torch.no_grad():
    single = torch.cat([model(x_val[i:i + 1]).argmax(1) for i in range(400)])
print(f"served one at a time: acc {(single == y_val[:400]).float().mean().item():.3f} on 400 sessions")
