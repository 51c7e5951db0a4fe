"""Motor-insurance claim prediction: early stopping keeps a deep copy of the best weights.

Five categorical columns (region, vehicle make, vehicle age band, driver age band,
occupation) get learned embeddings; six numeric columns are standardised with the
training statistics. The book is small (2,000 policies for training), so the network
overfits after a few epochs. Early stopping watches the validation log-loss, keeps the
best weights, stops after PATIENCE epochs without improvement and loads the best
weights back before the final evaluation on the held-out test policies.
"""
import copy
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

CARDINALITIES = {"region": 40, "make": 60, "vehicle_age": 10, "driver_age": 8, "occupation": 25}
N_NUMERIC = 6
MAX_EPOCHS = 60
PATIENCE = 10


def make_book(n, effects, weights):
    cats = torch.stack([torch.randint(0, c, (n,)) for c in CARDINALITIES.values()], dim=1)
    nums = torch.randn(n, N_NUMERIC)
    logit = -1.3 + nums @ weights + 0.6 * torch.tanh(nums[:, 0] * nums[:, 1])
    for j, table in enumerate(effects):
        logit = logit + table[cats[:, j]]
    logit = logit + 0.8 * effects[0][cats[:, 0]] * (nums[:, 2] > 0).float()
    y = torch.bernoulli(torch.sigmoid(logit))
    return cats, nums, y


def auc(scores, labels):
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    pos = labels == 1
    n_pos, n_neg = pos.sum().item(), (~pos).sum().item()
    return (ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class ClaimNet(nn.Module):
    def __init__(self, emb_dim=8, hidden=256):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, emb_dim) for c in CARDINALITIES.values())
        in_dim = emb_dim * len(CARDINALITIES) + N_NUMERIC
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, 1),
        )

    def forward(self, cats, nums):
        embedded = [emb(cats[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(embedded + [nums], dim=1)).squeeze(1)


def evaluate(model, loader):
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for cats, nums, y in loader:
            logits.append(model(cats, nums))
            labels.append(y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    return F.binary_cross_entropy_with_logits(logits, labels).item(), auc(logits, labels)


def main():
    effects = [0.6 * torch.randn(c) for c in CARDINALITIES.values()]
    weights = 0.5 * torch.randn(N_NUMERIC)
    train = make_book(2000, effects, weights)
    val = make_book(800, effects, weights)
    test = make_book(2000, effects, weights)
    mean, std = train[1].mean(0), train[1].std(0)
    loaders = {}
    for name, (cats, nums, y) in {"train": train, "val": val, "test": test}.items():
        ds = TensorDataset(cats, (nums - mean) / std, y)
        loaders[name] = DataLoader(ds, batch_size=64, shuffle=(name == "train"))
    print(f"claim rate: train {train[2].mean():.3f}  val {val[2].mean():.3f}  test {test[2].mean():.3f}")

    model = ClaimNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    best_loss, best_epoch, best_state, waited = float("inf"), -1, None, 0
    for epoch in range(MAX_EPOCHS):
        model.train()
        total, n = 0.0, 0
        for cats, nums, y in loaders["train"]:
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(cats, nums), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            n += len(y)
        val_loss, val_auc = evaluate(model, loaders["val"])
        print(f"epoch {epoch:2d}  train loss {total / n:.4f}  val loss {val_loss:.4f}  val AUC {val_auc:.4f}")
        if val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= PATIENCE:
                print(f"early stopping at epoch {epoch}: no improvement for {PATIENCE} epochs")
                break

    model.load_state_dict(best_state)
    print(f"restored best weights from epoch {best_epoch} (val loss {best_loss:.4f})")
    test_loss, test_auc = evaluate(model, loaders["test"])
    print(f"test loss {test_loss:.4f}  test AUC {test_auc:.4f}")


if __name__ == "__main__":
    main()
