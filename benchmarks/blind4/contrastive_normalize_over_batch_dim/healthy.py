"""SimCLR-style contrastive pre-training on audio-like feature vectors, with each embedding L2-normalised (dim=1)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

D_IN, N_CLASSES, PER_CLASS = 64, 40, 75
g = torch.Generator().manual_seed(1)
protos = torch.randn(N_CLASSES, D_IN, generator=g)


def make_split(per_class):
    y = torch.arange(N_CLASSES).repeat_interleave(per_class)
    # class prototype with a random gain (loudness), plus strong per-sample noise
    x = protos[y] * (0.5 + torch.rand(len(y), 1, generator=g)) + 1.5 * torch.randn(len(y), D_IN, generator=g)
    return x, y


x_train, y_train = make_split(PER_CLASS)  # labels are NOT used for pre-training
x_val, y_val = make_split(20)


def augment(x):
    gain = 0.6 + 0.8 * torch.rand(x.shape[0], 1)
    mask = (torch.rand_like(x) > 0.2).float()
    return (x * gain + 0.5 * torch.randn_like(x)) * mask


encoder = nn.Sequential(nn.Linear(D_IN, 128), nn.ReLU(), nn.Linear(128, 64))
projector = nn.Sequential(nn.ReLU(), nn.Linear(64, 32))
opt = torch.optim.Adam(list(encoder.parameters()) + list(projector.parameters()), lr=1e-3)
TAU = 0.2


def nt_xent(z1, z2):
    z = torch.cat([z1, z2], 0)
    z = F.normalize(z, dim=1)
    sim = z @ z.t() / TAU
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, targets)


@torch.no_grad()
def knn_acc(k=10):
    encoder.eval()
    tr = F.normalize(encoder(x_train), dim=1)
    va = F.normalize(encoder(x_val), dim=1)
    idx = (va @ tr.t()).topk(k, dim=1).indices
    pred = torch.mode(y_train[idx], dim=1).values
    encoder.train()
    return (pred == y_val).float().mean().item()


BATCH, EPOCHS = 128, 12
for epoch in range(EPOCHS):
    perm = torch.randperm(len(x_train))
    tot, nb = 0.0, 0
    for i in range(0, len(x_train), BATCH):
        xb = x_train[perm[i:i + BATCH]]
        loss = nt_xent(projector(encoder(augment(xb))), projector(encoder(augment(xb))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    print(f"epoch {epoch} contrastive_loss {tot / nb:.4f} val_knn_acc {knn_acc():.3f}")
