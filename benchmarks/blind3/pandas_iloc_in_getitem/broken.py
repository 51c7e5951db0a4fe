"""MLP regression on a 48-column sensor table held in a pandas DataFrame; the Dataset's __getitem__ does self.df.iloc[idx] and selects the feature columns for every single sample.

Each sample costs a pandas row lookup, a column selection and a dtype
conversion in Python, so the DataLoader (num_workers=0) spends far longer
assembling a batch of 128 rows than the model spends on the forward/backward.
"""
import time
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import Dataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_FEAT = 48
FEATURES = [f"s{i:02d}" for i in range(N_FEAT)]


def make_table(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEAT)).astype(np.float32)
    w = np.random.default_rng(0).normal(size=N_FEAT).astype(np.float32) / np.sqrt(N_FEAT)
    y = x @ w + 0.3 * np.tanh(x[:, 0] * x[:, 1]) + 0.05 * rng.normal(size=n)
    df = pd.DataFrame(x, columns=FEATURES)
    df.insert(0, "station", rng.integers(0, 50, size=n))
    df["target"] = y.astype(np.float32)
    return df


class SensorTable(Dataset):
    def __init__(self, df):
        self.df = df.reset_index(drop=True)

    def __len__(self):
        return len(self.df)

    def __getitem__(self, idx):
        row = self.df.iloc[idx]
        x = torch.tensor(row[FEATURES].to_numpy(dtype=np.float32))
        y = torch.tensor(row["target"], dtype=torch.float32)
        return x, y


train_df, val_df = make_table(6000, seed=1), make_table(2000, seed=2)
train_loader = DataLoader(SensorTable(train_df), batch_size=128, shuffle=True)
x_va = torch.tensor(val_df[FEATURES].to_numpy(dtype=np.float32))
y_va = torch.tensor(val_df["target"].to_numpy(dtype=np.float32))

model = nn.Sequential(nn.Linear(N_FEAT, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.MSELoss()

for epoch in range(3):
    model.train()
    running, data_time, compute_time = 0.0, 0.0, 0.0
    t_epoch = time.perf_counter()
    t0 = time.perf_counter()
    for x, y in train_loader:
        t1 = time.perf_counter()
        loss = criterion(model(x).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        t2 = time.perf_counter()
        data_time += t1 - t0
        compute_time += t2 - t1
        t0 = time.perf_counter()
    epoch_time = time.perf_counter() - t_epoch
    model.eval()
    with torch.no_grad():
        val_mse = criterion(model(x_va).squeeze(1), y_va).item()
    print(f"epoch {epoch}  train loss {running / len(train_loader):.4f}  val mse {val_mse:.4f}  "
          f"epoch {epoch_time:.2f}s  waiting for data {data_time:.2f}s  compute {compute_time:.2f}s  "
          f"({len(train_loader.dataset) / epoch_time:.0f} samples/s)")
