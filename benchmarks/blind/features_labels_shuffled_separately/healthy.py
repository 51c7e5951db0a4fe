"""Hand-written batching helper that shuffles the features and the labels with one shared permutation."""
import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)
np.random.seed(0)

n, d, n_classes = 4000, 30, 5
features = np.random.randn(n, d).astype(np.float32)
labels = (features[:, :5] @ np.random.randn(5, n_classes)).argmax(1)


def batches(x, y, batch_size):
    order = np.random.permutation(len(x))
    x, y = x[order], y[order]
    for s in range(0, len(x), batch_size):
        yield torch.from_numpy(x[s:s + batch_size]), torch.from_numpy(y[s:s + batch_size])


model = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_classes))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

for epoch in range(8):
    total, count = 0.0, 0
    for xb, yb in batches(features[:3200], labels[:3200], 64):
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
        count += len(xb)
    with torch.no_grad():
        acc = (model(torch.from_numpy(features[3200:])).argmax(1).numpy() == labels[3200:]).mean()
    print(f"epoch {epoch} loss {total / count:.4f} val acc {acc:.3f}")
