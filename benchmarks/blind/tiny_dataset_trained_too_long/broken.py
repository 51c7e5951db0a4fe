"""A wide MLP trained for a fixed 60 epochs on 300 noisy examples, with no regularisation and no early stopping;
the validation loss bottoms out early and then climbs."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

d, n_classes = 30, 3
w = torch.randn(d, n_classes)


def make(n):
    x = torch.randn(n, d)
    y = (x @ w + 2.0 * torch.randn(n, n_classes)).argmax(1)     # noisy labels
    return x, y


train_x, train_y = make(300)
val_x, val_y = make(500)

model = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, n_classes))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
max_epochs = 60

for epoch in range(max_epochs):
    model.train()
    perm = torch.randperm(300)
    total = 0.0
    for s in range(0, 300, 50):
        idx = perm[s:s + 50]
        optimizer.zero_grad()
        loss = criterion(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        val_loss = criterion(model(val_x), val_y).item()
        val_acc = (model(val_x).argmax(1) == val_y).float().mean().item()
    if epoch % 10 == 0 or epoch == max_epochs - 1:
        print(f"epoch {epoch} train loss {total / 300:.4f} val loss {val_loss:.4f} val acc {val_acc:.3f}")
