"""GAN with two discriminators (raw-sample and spectral-feature), both in the discriminator optimizer."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

T, ZDIM, N_REAL = 32, 16, 4096
t = torch.arange(T, dtype=torch.float32)
g = torch.Generator().manual_seed(1)


def real_batch(n):
    # damped sinusoids with random frequency, phase and amplitude
    f = 0.05 + 0.15 * torch.rand(n, 1, generator=g)
    ph = 6.2832 * torch.rand(n, 1, generator=g)
    a = 0.5 + 0.5 * torch.rand(n, 1, generator=g)
    return a * torch.sin(6.2832 * f * t + ph) * torch.exp(-t / 40) + 0.02 * torch.randn(n, T, generator=g)


real_data = real_batch(N_REAL)


def spectrum(x):
    return torch.fft.rfft(x, dim=1).abs()


G = nn.Sequential(nn.Linear(ZDIM, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, T))
disc_raw = nn.Sequential(nn.Linear(T, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
disc_spec = nn.Sequential(nn.Linear(T // 2 + 1, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))

params_disc = list(disc_raw.parameters()) + list(disc_spec.parameters())
opt_d = torch.optim.Adam(params_disc, lr=2e-4, betas=(0.5, 0.999))
opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
bce = F.binary_cross_entropy_with_logits


def d_losses(x, target):
    lr_ = bce(disc_raw(x), torch.full((x.shape[0], 1), target))
    ls_ = bce(disc_spec(spectrum(x)), torch.full((x.shape[0], 1), target))
    return lr_, ls_


@torch.no_grad()
def quality():
    fake = G(torch.randn(2048, ZDIM))
    real = real_batch(2048)
    spec_err = (spectrum(fake).mean(0) - spectrum(real).mean(0)).abs().mean().item()
    return fake.std(1).mean().item(), real.std(1).mean().item(), spec_err


BATCH, EPOCHS = 64, 10
for epoch in range(EPOCHS):
    perm = torch.randperm(N_REAL)
    sums = torch.zeros(3); nb = 0
    for i in range(0, N_REAL, BATCH):
        real = real_data[perm[i:i + BATCH]]
        fake = G(torch.randn(real.shape[0], ZDIM))
        # discriminator step
        r1, r2 = d_losses(real, 1.0)
        f1, f2 = d_losses(fake.detach(), 0.0)
        loss_d = r1 + r2 + f1 + f2
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # generator step
        g1, g2 = d_losses(fake, 1.0)
        loss_g = g1 + g2
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        sums += torch.tensor([loss_d.item(), loss_g.item(), (r2 + f2).item()]); nb += 1
    fstd, rstd, spec_err = quality()
    s = sums / nb
    print(f"epoch {epoch} d_loss {s[0]:.3f} g_loss {s[1]:.3f} d_spec_loss {s[2]:.3f} "
          f"fake_std {fstd:.3f} real_std {rstd:.3f} spectrum_L1_err {spec_err:.3f}")
