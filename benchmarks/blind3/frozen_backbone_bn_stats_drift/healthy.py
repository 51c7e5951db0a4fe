"""Transfer learning with a frozen pretrained encoder; FIXED: the frozen encoder is put in eval mode after model.train(), so its BatchNorm layers use (and keep) the pretrained running statistics.

Stage 1 "pretrains" the encoder on a large source task (standing in for a
downloaded checkpoint). Stage 2 freezes every encoder parameter and trains
only a new 3-class head on a small labelled target set with batch size 4.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

N_IN, LATENT = 32, 8
g = torch.Generator().manual_seed(123)
mixing = torch.randn(LATENT, N_IN, generator=g)


def make_inputs(n, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, LATENT, generator=gen)
    x = torch.tanh(z @ mixing / 3.0) * 3.0 + 1.5 + 0.1 * torch.randn(n, N_IN, generator=gen)
    return z, x


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_IN, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
        )

    def forward(self, x):
        return self.net(x)


class Classifier(nn.Module):
    def __init__(self, encoder, n_classes):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.head(self.encoder(x))


# ---- stage 1: pretraining on the source task (regress the latent factors) ----
encoder = Encoder()
z_src, x_src = make_inputs(8192, seed=1)
pre_head = nn.Linear(64, LATENT)
pre_opt = torch.optim.Adam(list(encoder.parameters()) + list(pre_head.parameters()), lr=3e-3)
src_loader = DataLoader(TensorDataset(x_src, z_src), batch_size=128, shuffle=True)
encoder.train()
for epoch in range(8):
    for xb, zb in src_loader:
        loss = nn.functional.mse_loss(pre_head(encoder(xb)), zb)
        pre_opt.zero_grad()
        loss.backward()
        pre_opt.step()
print(f"pretraining done, source mse {loss.item():.4f}")

# ---- stage 2: fine-tune a new head on a small target set ----
def target_labels(z):
    score = z[:, 0] + 0.5 * z[:, 1]
    return (score > -0.8).long() + (score > 0.8).long()


z_tr, x_tr = make_inputs(800, seed=2)
z_va, x_va = make_inputs(2000, seed=3)
y_tr, y_va = target_labels(z_tr), target_labels(z_va)

model = Classifier(encoder, n_classes=3)
for p in model.encoder.parameters():
    p.requires_grad = False  # freeze the pretrained encoder

bn = model.encoder.net[1]
mean_before = bn.running_mean.clone()

optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=4, shuffle=True)


def evaluate():
    model.eval()
    with torch.no_grad():
        logits = model(x_va)
        acc = (logits.argmax(1) == y_va).float().mean().item()
        loss = criterion(logits, y_va).item()
    return loss, acc


for epoch in range(8):
    model.train()
    model.encoder.eval()  # frozen encoder: keep pretrained BatchNorm statistics
    running = 0.0
    for xb, yb in loader:
        loss = criterion(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
    val_loss, val_acc = evaluate()
    drift = (bn.running_mean - mean_before).abs().mean().item()
    print(f"epoch {epoch}  train loss {running / len(loader):.4f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}  encoder BN running_mean drift {drift:.4f}")

print(f"final val acc {evaluate()[1]:.3f}")
