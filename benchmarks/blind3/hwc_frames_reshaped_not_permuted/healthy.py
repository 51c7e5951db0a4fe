"""CNN that reads camera frames stored as HWC numpy arrays (height, width, RGB) and predicts which coloured part is on the tray and on which side; FIXED: the frames are turned into CHW tensors with permute(2, 0, 1).

reshape keeps the memory order, so each "channel" of the result is a band of
interleaved R, G, B values from a third of the image rows, not a colour plane.
"""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

H = W = 24
COLOURS = np.array([[220, 40, 40], [40, 200, 60], [50, 70, 230], [230, 210, 40]], dtype=np.float32)  # red green blue yellow
N_CLASSES = len(COLOURS) * 2  # colour x (left, right)


def render_frames(n, seed):
    rng = np.random.default_rng(seed)
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        img = rng.normal(110, 25, size=(H, W, 3))
        colour = rng.integers(len(COLOURS))
        side = rng.integers(2)
        size = rng.integers(4, 8)
        top = rng.integers(0, H - size)
        left = rng.integers(0, W // 2 - size) + side * (W // 2)
        img[top:top + size, left:left + size] = COLOURS[colour] + rng.normal(0, 15, size=(size, size, 3))
        # a distractor blob in a random grey level
        dt, dl = rng.integers(0, H - 3), rng.integers(0, W - 3)
        img[dt:dt + 3, dl:dl + 3] = rng.integers(60, 200)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
        labels[i] = colour * 2 + side
    return frames, labels


class TrayDataset(Dataset):
    def __init__(self, n, seed):
        self.frames, self.labels = render_frames(n, seed)  # (N, H, W, 3) uint8, as a camera driver returns them

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        frame = torch.from_numpy(self.frames[i]).float() / 255.0
        x = frame.permute(2, 0, 1)
        x = (x - 0.45) / 0.25
        return x, int(self.labels[i])


train_loader = DataLoader(TrayDataset(3000, seed=1), batch_size=64, shuffle=True)
val_loader = DataLoader(TrayDataset(1000, seed=2), batch_size=500)

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
    nn.Flatten(), nn.Linear(32 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, N_CLASSES),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()


def evaluate():
    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for x, y in val_loader:
            logits = model(x)
            loss_sum += criterion(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    model.train()
    return loss_sum / total, correct / total


for epoch in range(4):
    model.train()
    running = 0.0
    for x, y in train_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
    val_loss, val_acc = evaluate()
    print(f"epoch {epoch}  train loss {running / len(train_loader):.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")
