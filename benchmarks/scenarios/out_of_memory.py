# expect: out_of_memory
"""A contrastive loss that builds the full pairwise distance matrix of the whole data set."""
import torch
from torch import nn

torch.manual_seed(0)
data = torch.randn(3_000_000, 8)
model = nn.Linear(8, 8)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(2):
    z = model(data[:4096])
    bank = data  # the bug: all 3M samples instead of a batch-sized memory bank
    d = torch.cdist(z, model(bank))  # 4096 x 3M floats ~ 49 GB
    loss = d.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
