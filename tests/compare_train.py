"""A tiny real training script for the comparison tests (journal, learn, --against, diff) and
benchmarks/learn_false_alarms.py: healthy by default, with one flag per planted change.

    python tests/compare_train.py --seed 1                 # healthy, another seed
    python tests/compare_train.py --lr 0.3                 # learning rate x30
    python tests/compare_train.py --freeze 2               # layer 2 frozen (left out of the optimizer)
    python tests/compare_train.py --no-zero-grad           # optimizer.zero_grad() removed
    python tests/compare_train.py --init-std 0.6           # layer 2 initialised 6x too wide (default std 0.1)
"""

import argparse

import torch
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--steps", type=int, default=60)
p.add_argument("--freeze", type=int, default=None)
p.add_argument("--no-zero-grad", action="store_true")
p.add_argument("--init-std", type=float, default=None)
args = p.parse_args()

torch.manual_seed(args.seed)
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
if args.init_std is not None:
    nn.init.normal_(model[2].weight, std=args.init_std)
if args.freeze is not None:
    model[args.freeze].requires_grad_(False)

g = torch.Generator().manual_seed(1234)  # the data set is the same whatever the seed
x = torch.randn(512, 20, generator=g)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0.3).long()

opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr)
for step in range(args.steps):
    idx = torch.randint(0, len(x), (32,))
    if not args.no_zero_grad:
        opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
