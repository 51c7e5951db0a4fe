"""Sound-event classifier whose Dataset builds its class list from the directory listing of each split; FIXED: the listing is sorted (self.classes = sorted(listdir(root))), so both splits use the same class-to-index mapping.

The "filesystem" is simulated in memory: listdir returns entries in the order
they were created, as many filesystems do, and the validation folders were
copied in a different order from the training folders.
"""
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_FEAT = 32
CLASS_NAMES = ["car_horn", "dog_bark", "drilling", "siren", "street_music"]
PROTOTYPES = {c: torch.randn(N_FEAT, generator=torch.Generator().manual_seed(10 + i)) for i, c in enumerate(CLASS_NAMES)}

# in-memory stand-in for the data folder: {split: {class_folder: [clip features]}}, in creation order
FILESYSTEM = {}


def write_split(split, folder_order, n_per_class, seed):
    g = torch.Generator().manual_seed(seed)
    FILESYSTEM[split] = {}
    for name in folder_order:
        clips = PROTOTYPES[name] + 1.2 * torch.randn(n_per_class, N_FEAT, generator=g)
        FILESYSTEM[split][name] = list(clips)


def listdir(split):
    return list(FILESYSTEM[split].keys())


write_split("train", ["dog_bark", "siren", "car_horn", "street_music", "drilling"], 500, seed=1)
write_split("val", ["siren", "street_music", "drilling", "dog_bark", "car_horn"], 150, seed=2)


class UrbanSoundFolder(Dataset):
    def __init__(self, split):
        self.classes = sorted(listdir(split))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(clip, self.class_to_idx[c]) for c in self.classes for clip in FILESYSTEM[split][c]]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


train_ds, val_ds = UrbanSoundFolder("train"), UrbanSoundFolder("val")
train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
val_loader = DataLoader(val_ds, batch_size=256)

model = nn.Sequential(nn.Linear(N_FEAT, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, len(CLASS_NAMES)))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()


def run_epoch(loader, train):
    model.train(train)
    total, correct, loss_sum = 0, 0, 0.0
    with torch.set_grad_enabled(train):
        for x, y in loader:
            logits = model(x)
            loss = criterion(logits, y)
            if train:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    return loss_sum / total, correct / total


for epoch in range(8):
    tr_loss, tr_acc = run_epoch(train_loader, train=True)
    va_loss, va_acc = run_epoch(val_loader, train=False)
    print(f"epoch {epoch}  train loss {tr_loss:.4f}  train acc {tr_acc:.3f}  val loss {va_loss:.4f}  val acc {va_acc:.3f}")
