"""Mixed-precision (float16 autocast + GradScaler) training of an MLP audio-feature classifier with SGD and gradient clipping at max_norm=1.0; clip_grad_norm_ is applied to the still-scaled gradients, without scaler.unscale_(optimizer) first.

The gradients that clip_grad_norm_ sees are multiplied by the loss scale
(tens of thousands), so every step is clipped hard; scaler.step() then divides
by the scale again and the update that reaches the weights is tiny.
"""
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset, DataLoader

torch.set_num_threads(1)
torch.manual_seed(0)

DEVICE = "cpu"
N_FEAT, N_CLASSES = 40, 6


def make_clips(n, seed):
    """40 log-mel-like features per clip; each class has its own spectral template."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(N_CLASSES, N_FEAT, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    gain = 0.5 + torch.rand(n, 1, generator=g)
    x = gain * templates[y] + 1.0 * torch.randn(n, N_FEAT, generator=g)
    return x, y


x_tr, y_tr = make_clips(6000, seed=1)
x_va, y_va = make_clips(1500, seed=2)
loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)

model = nn.Sequential(
    nn.Linear(N_FEAT, 256), nn.ReLU(),
    nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, N_CLASSES),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scaler = torch.amp.GradScaler(DEVICE)
criterion = nn.CrossEntropyLoss()


def evaluate():
    model.eval()
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.float16):
        logits = model(x_va).float()
    model.train()
    return criterion(logits, y_va).item(), (logits.argmax(1) == y_va).float().mean().item()


for epoch in range(5):
    model.train()
    running, norms = 0.0, []
    for xb, yb in loader:
        optimizer.zero_grad()
        with torch.autocast(DEVICE, dtype=torch.float16):
            loss = criterion(model(xb).float(), yb)
        scaler.scale(loss).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
        running += loss.item()
        norms.append(grad_norm.item())
    val_loss, val_acc = evaluate()
    print(f"epoch {epoch}  train loss {running / len(loader):.4f}  mean grad norm seen by clip {sum(norms) / len(norms):.3g}  "
          f"loss scale {scaler.get_scale():.0f}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")
