"""Mixture-of-experts energy regressor: top-1 gate taken from the softmax over all experts.

Synthetic smart-meter data: the hourly load of a building follows one of four regimes
(heating, cooling, weekend standby, holiday/event) and each regime has its own linear
response to the 12 input features (outdoor temperature, humidity, occupancy, hour of
day, ...). Which regime applies is itself a function of the inputs. The model has a
linear router and four linear experts (one energy signature per regime); each sample
is sent to the single highest-scoring expert, whose output is scaled by its gate value
so that the router is trained through the experts' outputs.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_FEATURES, N_EXPERTS, K = 12, 4, 1
EPOCHS = 15


def make_meter_data(n, regime_w, expert_w):
    x = torch.randn(n, N_FEATURES)
    regime = (x @ regime_w).argmax(1)
    per_regime = torch.stack([x @ slope + base for slope, base in expert_w], dim=1)
    y = per_regime[torch.arange(n), regime] + 0.1 * torch.randn(n)
    return x, y, regime


class Expert(nn.Module):
    """A linear energy-signature model: base load plus a slope per feature."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(N_FEATURES, 1)

    def forward(self, x):
        return self.net(x).squeeze(1)


class SwitchMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.w_gate = nn.Linear(N_FEATURES, N_EXPERTS, bias=False)
        self.experts = nn.ModuleList(Expert() for _ in range(N_EXPERTS))

    def forward(self, x):
        logits = self.w_gate(x)
        probs = F.softmax(logits, dim=1)
        gates, top_idx = probs.topk(K, dim=1)
        out = torch.zeros(x.size(0))
        for e, expert in enumerate(self.experts):
            for k in range(K):
                routed = top_idx[:, k] == e
                if routed.any():
                    out[routed] = out[routed] + gates[routed, k] * expert(x[routed])
        return out, top_idx[:, 0]


def main():
    regime_w = torch.randn(N_FEATURES, N_EXPERTS)
    expert_w = [(torch.randn(N_FEATURES) / 3, 1.5 * torch.randn(())) for _ in range(N_EXPERTS)]
    x_tr, y_tr, _ = make_meter_data(8000, regime_w, expert_w)
    x_va, y_va, regime_va = make_meter_data(2000, regime_w, expert_w)
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=128, shuffle=True)
    print(f"target variance: train {y_tr.var():.3f}  val {y_va.var():.3f}")

    model = SwitchMoE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(EPOCHS):
        model.train()
        total, n = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            pred, _ = model(xb)
            loss = F.mse_loss(pred, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            n += len(yb)
        model.eval()
        with torch.no_grad():
            pred, chosen = model(x_va)
            val_mse = F.mse_loss(pred, y_va).item()
        load = torch.bincount(chosen, minlength=N_EXPERTS).float() / len(chosen)
        # routing purity: share of each expert's samples that come from its majority regime
        purity = sum(torch.bincount(regime_va[chosen == e], minlength=N_EXPERTS).max().item()
                     for e in range(N_EXPERTS) if (chosen == e).any()) / len(chosen)
        print(f"epoch {epoch:2d}  train MSE {total / n:.4f}  val MSE {val_mse:.4f}  "
              f"val R2 {1 - val_mse / y_va.var().item():.3f}  routing purity {purity:.3f}  "
              f"expert load {' '.join(f'{l:.2f}' for l in load.tolist())}")


if __name__ == "__main__":
    main()
