"""Next-tick price-direction classifier; the lagged mid-price movement feature is built with shift(1), so it holds the previous movement."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic order-book tape: returns with weak momentum and an imbalance signal ----
g = torch.Generator().manual_seed(1)
N = 24000
imbalance = torch.zeros(N)
ret = torch.zeros(N)
e_imb = torch.randn(N, generator=g)
e_ret = torch.randn(N, generator=g)
for t in range(1, N):
    imbalance[t] = 0.8 * imbalance[t - 1] + 0.6 * e_imb[t]
    ret[t] = 0.12 * ret[t - 1] + 0.25 * imbalance[t - 1] + e_ret[t]
mid_price = 100 + 0.01 * torch.cumsum(ret, 0)


def shift(x, k):
    """pandas-style shift: k > 0 moves values later in time (lag), k < 0 moves them earlier (lead)."""
    out = torch.zeros_like(x)
    if k > 0:
        out[k:] = x[:-k]
    elif k < 0:
        out[:k] = x[-k:]
    else:
        out[:] = x
    return out


def diff(x):
    out = torch.zeros_like(x)
    out[1:] = x[1:] - x[:-1]
    return out


def build_features(mid, imb):
    move = diff(mid) * 100
    vol = torch.stack([shift(move, k).abs() for k in range(10)]).mean(0)
    feats = {
        "return_0": move,
        "return_1": shift(move, 1),
        "return_2": shift(move, 2),
        "imbalance": imb,
        "imbalance_change": diff(imb),
        "volatility_10": vol,
        # mid-price movement, lagged to avoid look-ahead bias
        "mid_price_movement": shift(diff(mid) * 100, 1),
    }
    return torch.stack(list(feats.values()), 1)


X = build_features(mid_price, imbalance)
y = (shift(mid_price, -1) > mid_price).float()          # label: does the next tick go up?
X, y = X[20:-1], y[20:-1]                              # drop warm-up rows and the last row (no next tick)
n = len(y)
tr, va = int(0.7 * n), int(0.85 * n)
mu, sd = X[:tr].mean(0), X[:tr].std(0)
norm = lambda a: (a - mu) / sd

model = nn.Sequential(nn.Linear(X.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.BCEWithLogitsLoss()


def accuracy(xb, yb):
    with torch.no_grad():
        return ((model(norm(xb)).squeeze(1) > 0).float() == yb).float().mean().item()


def live_backtest(start, end):
    """Replay the test period as in production: at tick t only prices up to t exist."""
    hits = 0
    for t in range(start, end):
        t_raw = t + 20
        feats = build_features(mid_price[t_raw - 40:t_raw + 1], imbalance[t_raw - 40:t_raw + 1])[-1]
        with torch.no_grad():
            pred = (model(norm(feats[None]))[0, 0] > 0).float()
        hits += int(pred.item() == y[t].item())
    return hits / (end - start)


print(f"train {tr}, val {va - tr}, live test {n - va} ticks; up-tick rate {y.mean():.3f}")
for epoch in range(8):
    model.train()
    perm = torch.randperm(tr)
    tot, nb = 0.0, 0
    for s in range(0, tr, 256):
        idx = perm[s:s + 256]
        loss = loss_fn(model(norm(X[idx])).squeeze(1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} train_acc {accuracy(X[:tr], y[:tr]):.3f} "
          f"val_acc {accuracy(X[tr:va], y[tr:va]):.3f}")
print(f"offline test acc {accuracy(X[va:], y[va:]):.3f}, live backtest acc {live_backtest(va, n):.3f}")
