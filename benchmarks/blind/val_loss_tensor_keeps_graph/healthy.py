"""Training loop that sums training and validation losses as Python floats (validation under no_grad) and keeps
the per-epoch totals in a history list."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

d = 16
x_all = torch.randn(6500, d)
y_all = torch.sin(x_all[:, :3].sum(1, keepdim=True))
train_x, train_y = x_all[:4000], y_all[:4000]
val_x, val_y = x_all[4000:], y_all[4000:]

model = nn.Sequential(
    nn.Linear(d, 256), nn.ReLU(),
    nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, 1),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
history = []

for epoch in range(10):
    model.train()
    running_loss = 0.0
    for s in range(0, len(train_x), 256):
        optimizer.zero_grad()
        loss = criterion(model(train_x[s:s + 256]), train_y[s:s + 256])
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    model.eval()
    val_running_loss = 0.0
    with torch.no_grad():
        for s in range(0, len(val_x), 500):
            val_running_loss += criterion(model(val_x[s:s + 500]), val_y[s:s + 500]).item()
    history.append((running_loss / 16, val_running_loss / 5))
    print(f"epoch {epoch} train {history[-1][0]:.4f} val {history[-1][1]:.4f}")
