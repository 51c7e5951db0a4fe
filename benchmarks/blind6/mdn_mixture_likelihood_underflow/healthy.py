"""Mixture density network: the NLL is computed in log space (log pi + log N summed over dims, then logsumexp).

Multimodal trajectory forecasting: from the last 4 observed positions of a vehicle approaching an
intersection, predict its next 8 positions (16 coordinates). Vehicles turn left, go straight or
turn right with equal probability, which the past does not reveal, so a mixture density network
with 5 diagonal Gaussian components is trained by maximum likelihood. About 0.3% of the training
tracks contain a tracker glitch (one future point jumps by about 0.7 m); validation tracks are clean.
Validation: NLL per trajectory, ADE of the most probable component and minADE over the 5 means.
"""
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)

K, PAST, FUT = 5, 4, 8


def make_tracks(n, glitch=0.0):
    speed = 0.6 + 0.8 * torch.rand(n, 1)
    start = 2.0 + 2.0 * torch.rand(n, 1)
    lateral = 0.3 * torch.randn(n, 1)
    t_past = torch.arange(-PAST + 1, 1, dtype=torch.float32)
    past = torch.stack([lateral.expand(n, PAST), -start + speed * t_past], 2)
    turn = torch.randint(0, 3, (n, 1)).float() - 1          # -1 left, 0 straight, +1 right
    t = torch.arange(1, FUT + 1, dtype=torch.float32)
    angle = turn * 0.12 * t                                    # heading change per step
    dx = speed * torch.sin(angle)
    dy = speed * torch.cos(angle)
    fut = torch.stack([dx.cumsum(1), dy.cumsum(1)], 2) + past[:, -1:, :]
    past = past + 0.03 * torch.randn_like(past)
    fut = fut + 0.05 * torch.randn_like(fut)
    hit = torch.nonzero(torch.rand(n) < glitch).squeeze(1)   # tracker glitch: one future point jumps
    fut[hit, torch.randint(0, FUT, (len(hit),))] += 0.7 * torch.randn(len(hit), 2)
    rel = fut - past[:, -1:, :]
    return past.reshape(n, -1), rel.reshape(n, -1)


x_tr, y_tr = make_tracks(5000, glitch=0.003)
x_va, y_va = make_tracks(1000)
D = y_tr.shape[1]
y_mean, y_std = y_tr.mean(0), y_tr.std(0)   # targets are trained in standardised units
y_tr_n, y_va_n = (y_tr - y_mean) / y_std, (y_va - y_mean) / y_std


class MDN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(PAST * 2, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh())
        self.pi = nn.Linear(128, K)
        self.mu = nn.Linear(128, K * D)
        self.log_sigma = nn.Linear(128, K * D)

    def forward(self, x):
        h = self.body(x)
        pi = F.softmax(self.pi(h), dim=1)
        mu = self.mu(h).view(-1, K, D)
        sigma = torch.exp(self.log_sigma(h)).view(-1, K, D)
        return pi, mu, sigma


def gaussian_log_probability(sigma, mu, target):
    target = target.unsqueeze(1).expand_as(mu)
    ret = -0.5 * ((target - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    return torch.sum(ret, 2)


def mdn_loss(pi, mu, sigma, target):
    log_prob = torch.log(pi) + gaussian_log_probability(sigma, mu, target)
    nll = -torch.logsumexp(log_prob, dim=1)
    return torch.mean(nll)


def ade(pred, target):
    return (pred - target).view(len(pred), FUT, 2).norm(dim=2).mean(1)


model = MDN()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(15):
    model.train()
    perm = torch.randperm(len(x_tr))
    total, bad_batches = 0.0, 0
    for i in range(0, len(perm), 100):
        b = perm[i:i + 100]
        loss = mdn_loss(*model(x_tr[b]), y_tr_n[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            bad_batches += 1
        total += loss.item() * len(b)
    model.eval()
    with torch.no_grad():
        pi, mu, sigma = model(x_va)
        val_nll = mdn_loss(pi, mu, sigma, y_va_n).item()
        mu = mu * y_std + y_mean
        top = mu[torch.arange(len(mu)), pi.argmax(1)]
        ade_top = ade(top, y_va).mean().item()
        min_ade = torch.stack([ade(mu[:, k], y_va) for k in range(K)], 1).min(1).values.mean().item()
    print(f"epoch {epoch:2d}  train nll {total / len(x_tr):9.3f}  non-finite batches {bad_batches:2d}  "
          f"val nll {val_nll:9.3f}  ADE(top) {ade_top:.3f}  minADE@5 {min_ade:.3f}")
