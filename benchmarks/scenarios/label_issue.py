# expect: label_issue
"""A linear-SVM style data set with labels -1/+1, trained with BCEWithLogitsLoss as if they were 0/1."""
import torch
import torch.nn as nn

torch.manual_seed(0)
X = torch.randn(1024, 12)
w_true = torch.randn(12)
labels = torch.where(X @ w_true > 0, 1.0, -1.0)  # the bug: -1/+1 labels fed to a loss that expects 0/1 targets

net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()

for step in range(150):
    idx = torch.randint(0, len(X), (64,))
    logits = net(X[idx]).squeeze(1)
    loss = bce(logits, labels[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(step, round(loss.item(), 4))
