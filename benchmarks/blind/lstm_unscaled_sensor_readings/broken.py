"""Remaining-useful-life regression with an LSTM on raw turbofan-style sensor readings (values in the hundreds and
thousands) and raw RUL targets in cycles; nothing is scaled."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n_units, window, n_sensors = 300, 30, 8
base = torch.tensor([518.7, 642.5, 1589.8, 1400.6, 14.62, 21.61, 554.4, 2388.1])
drift = torch.tensor([0.0, 0.5, 6.0, 9.0, 0.0, 0.01, -0.6, 0.08])
rul = torch.randint(5, 200, (n_units,)).float()               # cycles left at the end of the window
age = (200 - rul).view(-1, 1, 1) + torch.arange(window).view(1, -1, 1) - window
readings = base + drift * age / 10 + torch.randn(n_units, window, n_sensors) * base * 0.002
train_x, train_y = readings[:240], rul[:240]
val_x, val_y = readings[240:], rul[240:]


class RULNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(n_sensors, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(1)


model = RULNet()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.MSELoss()

for epoch in range(15):
    perm = torch.randperm(len(train_x))
    total = 0.0
    for s in range(0, len(perm), 16):
        idx = perm[s:s + 16]
        optimizer.zero_grad()
        loss = loss_fn(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    if epoch % 5 == 4:
        with torch.no_grad():
            rmse = loss_fn(model(val_x), val_y).sqrt().item()
        print(f"epoch {epoch} train mse {total / len(perm):.1f} val rmse {rmse:.1f} cycles")
