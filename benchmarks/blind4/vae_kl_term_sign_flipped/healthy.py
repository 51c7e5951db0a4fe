"""MLP VAE on 24-D sensor vectors with the KL divergence added to the loss (recon + kld), as the ELBO requires."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

D, Z, N_TRAIN, N_VAL = 24, 4, 4000, 500

# data: a 2-D latent factor pushed through a fixed random nonlinear map, plus noise
g = torch.Generator().manual_seed(1)
W1 = torch.randn(2, 32, generator=g)
W2 = torch.randn(32, D, generator=g) / math.sqrt(32)


def make_data(n):
    s = torch.randn(n, 2, generator=g)
    return torch.tanh(s @ W1) @ W2 + 0.05 * torch.randn(n, D, generator=g)


x_train, x_val = make_data(N_TRAIN), make_data(N_VAL)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.mu = nn.Linear(64, Z)
        self.logvar = nn.Linear(64, Z)
        self.dec = nn.Sequential(nn.Linear(Z, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, D))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


def vae_loss(x_hat, x, mu, logvar):
    recon = F.mse_loss(x_hat, x, reduction="sum") / x.shape[0]
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
    loss = recon + kld
    return loss, recon, kld


model = VAE()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


@torch.no_grad()
def evaluate():
    model.eval()
    x_hat, mu, logvar = model(x_val)
    _, recon, kld = vae_loss(x_hat, x_val, mu, logvar)
    # samples from the prior should look like data: compare their per-feature std with the data's
    samples = model.dec(torch.randn(N_VAL, Z))
    std_ratio = (samples.std(0) / x_val.std(0)).mean().item()
    model.train()
    return recon.item(), kld.item(), std_ratio


BATCH, EPOCHS = 100, 12
for epoch in range(EPOCHS):
    perm = torch.randperm(N_TRAIN)
    tot, nb = 0.0, 0
    for i in range(0, N_TRAIN, BATCH):
        xb = x_train[perm[i:i + BATCH]]
        x_hat, mu, logvar = model(xb)
        loss, recon, kld = vae_loss(x_hat, xb, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    v_recon, v_kld, std_ratio = evaluate()
    print(f"epoch {epoch} train_loss {tot / nb:.4g} val_recon {v_recon:.4g} val_kl {v_kld:.4g} "
          f"prior_sample_std/data_std {std_ratio:.3f} (data total variance {x_val.var(0).sum().item():.3f})")
