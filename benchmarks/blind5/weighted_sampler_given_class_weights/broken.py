"""Imbalanced call detection (10% positives) with a WeightedRandomSampler that is given the two class weights instead of one weight per training sample."""
import math
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic hydrophone clips: 1-D signals, positives contain an upsweep call buried in noise ----
g = torch.Generator().manual_seed(1)
L = 256


def make_clips(n, pos_rate):
    y = (torch.rand(n, generator=g) < pos_rate).long()
    t = torch.linspace(0, 1, L)
    x = torch.randn(n, L, generator=g)
    for i in torch.nonzero(y).squeeze(1).tolist():
        f0 = 8 + 8 * torch.rand(1, generator=g).item()
        start = torch.randint(0, L // 2, (1,), generator=g).item()
        seg = torch.arange(L - start).float() / L
        call = torch.sin(2 * math.pi * (f0 * seg + 40 * seg ** 2)) * torch.hann_window(L - start)
        x[i, start:] += 0.9 * call
    return x.unsqueeze(1), y


x_train, y_train = make_clips(4000, 0.1)
x_val, y_val = make_clips(1500, 0.1)

class_counts = torch.bincount(y_train)
class_weights = 1.0 / class_counts.float()
sampler = WeightedRandomSampler(class_weights, num_samples=len(y_train), replacement=True)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, sampler=sampler)

model = nn.Sequential(
    nn.Conv1d(1, 16, 9, padding=4), nn.ReLU(), nn.MaxPool1d(4),
    nn.Conv1d(16, 32, 9, padding=4), nn.ReLU(), nn.MaxPool1d(4),
    nn.Conv1d(32, 32, 9, padding=4), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten(),
    nn.Linear(32, 2),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()

print(f"train clips {len(y_train)}, class counts {class_counts.tolist()}")
for epoch in range(5):
    model.train()
    tot, nb = 0.0, 0
    for xb, yb in train_loader:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        out = model(x_val)
        pred = out.argmax(1)
        recall_pos = (pred[y_val == 1] == 1).float().mean().item()
        recall_neg = (pred[y_val == 0] == 0).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_loss {loss_fn(out, y_val).item():.4f} "
          f"val_balanced_acc {(recall_pos + recall_neg) / 2:.3f} call_recall {recall_pos:.3f}")
