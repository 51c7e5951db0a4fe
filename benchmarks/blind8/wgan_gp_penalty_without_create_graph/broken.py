"""WGAN-GP on a 2-D toy distribution: eight Gaussian modes on a ring.

The generator maps 2-D noise to points; the critic is an MLP without normalisation
layers, trained five times per generator step with the Wasserstein loss plus the
gradient penalty lambda * (||grad_x D(x_hat)|| - 1)^2 on random interpolates between
real and generated points (Gulrajani et al., 2017). Sample quality is measured on
2,000 generated points: the sliced Wasserstein distance to 2,000 real points, the
share of points within 0.25 of a mode and the number of modes that receive at least
2% of the samples.
"""
import math
import random

import torch
import torch.nn as nn

torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)

N_MODES, RADIUS, MODE_STD = 8, 2.0, 0.1
BATCH = 128
ITERS = 500
CRITIC_ITERS = 5
LAMBDA = 10.0
CENTERS = torch.tensor([[RADIUS * math.cos(2 * math.pi * k / N_MODES),
                         RADIUS * math.sin(2 * math.pi * k / N_MODES)] for k in range(N_MODES)])


def real_batch(n, gen=None):
    return CENTERS[torch.randint(0, N_MODES, (n,), generator=gen)] + MODE_STD * torch.randn(n, 2, generator=gen)


def mlp(n_in, n_out, hidden=64):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def gradient_penalty(critic, real, fake):
    alpha = torch.rand(real.size(0), 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x_hat)
    grads = torch.autograd.grad(outputs=scores, inputs=x_hat, grad_outputs=torch.ones_like(scores))[0]
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def sample_quality(generator):
    with torch.no_grad():
        points = generator(torch.randn(2000, 2))
    directions = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    directions = directions / directions.norm(dim=0, keepdim=True)
    real = real_batch(2000, torch.Generator().manual_seed(2))
    swd = ((points @ directions).sort(0).values - (real @ directions).sort(0).values).abs().mean().item()
    dist = torch.cdist(points, CENTERS)
    nearest_dist, nearest = dist.min(1)
    good = nearest_dist < 0.25
    share = torch.bincount(nearest[good], minlength=N_MODES).float() / len(points)
    return good.float().mean().item(), int((share >= 0.02).sum().item()), swd


def main():
    generator, critic = mlp(2, 2), mlp(2, 1)
    opt_g = torch.optim.Adam(generator.parameters(), lr=5e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=5e-4, betas=(0.5, 0.9))
    for it in range(ITERS):
        for _ in range(CRITIC_ITERS):
            real = real_batch(BATCH)
            with torch.no_grad():
                fake = generator(torch.randn(BATCH, 2))
            opt_d.zero_grad()
            wasserstein = critic(real).mean() - critic(fake).mean()
            gp = gradient_penalty(critic, real, fake)
            d_loss = -wasserstein + LAMBDA * gp
            d_loss.backward()
            opt_d.step()
        opt_g.zero_grad()
        g_loss = -critic(generator(torch.randn(BATCH, 2))).mean()
        g_loss.backward()
        opt_g.step()
        if (it + 1) % 100 == 0:
            near, modes, swd = sample_quality(generator)
            print(f"iter {it + 1:4d}  critic loss {d_loss.item():9.3f}  W estimate {wasserstein.item():8.3f}  "
                  f"GP {gp.item():8.3f}  G loss {g_loss.item():9.3f}  near a mode {near:.3f}  modes {modes}/8  sliced W {swd:.3f}")


if __name__ == "__main__":
    main()
