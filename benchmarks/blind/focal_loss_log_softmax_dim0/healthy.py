"""Embedding classifier trained with a hand-written focal loss whose log_softmax is taken over the class dimension."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

n_ids, d = 40, 48
centres = torch.randn(n_ids, d)
ids = torch.randint(0, n_ids, (4000,))
faces = centres[ids] + 2.0 * torch.randn(4000, d)


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, output, target):
        logpt = F.log_softmax(output, 1)
        logpt = logpt.gather(1, target.view(-1, 1)).view(-1)
        pt = logpt.detach().exp()
        return (-1 * (1 - pt) ** self.gamma * logpt).mean()


model = nn.Sequential(nn.Linear(d, 128), nn.PReLU(), nn.Linear(128, 64), nn.PReLU(), nn.Linear(64, n_ids))
criterion = FocalLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

for epoch in range(6):
    perm = torch.randperm(3200)
    total = 0.0
    for s in range(0, 3200, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(faces[idx]), ids[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(faces[3200:]).argmax(1) == ids[3200:]).float().mean().item()
    print(f"epoch {epoch} focal loss {total / 3200:.4f} val acc {acc:.3f}")
