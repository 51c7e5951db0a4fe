"""1-D GAN (generator and discriminator MLPs, one Adam optimizer each); in the generator step the fake batch is passed to D as fake.detach().

The .detach() is correct in the discriminator step, but it was copied into the
generator step too.
"""
import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.manual_seed(0)

LATENT = 8
REAL_MEAN, REAL_STD = 4.0, 1.25


def real_batch(n):
    return torch.randn(n, 1) * REAL_STD + REAL_MEAN


G = nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
D = nn.Sequential(nn.Linear(1, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()

batch = 128
ones = torch.ones(batch, 1)
zeros = torch.zeros(batch, 1)

for step in range(1501):
    # ---- discriminator step ----
    z = torch.randn(batch, LATENT)
    fake = G(z)
    d_loss = bce(D(real_batch(batch)), ones) + bce(D(fake.detach()), zeros)
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()

    # ---- generator step ----
    z = torch.randn(batch, LATENT)
    fake = G(z)
    g_loss = bce(D(fake.detach()), ones)
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()

    if step % 250 == 0:
        with torch.no_grad():
            s = G(torch.randn(2000, LATENT))
        print(f"step {step:4d}  d_loss {d_loss.item():.4f}  g_loss {g_loss.item():.4f}  "
              f"fake mean {s.mean().item():.3f} std {s.std().item():.3f}  (real {REAL_MEAN} / {REAL_STD})")

with torch.no_grad():
    s = G(torch.randn(5000, LATENT))
print(f"final fake mean {s.mean().item():.3f}  std {s.std().item():.3f}  |mean error| {abs(s.mean().item() - REAL_MEAN):.3f}")
