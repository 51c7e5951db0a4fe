"""Knowledge distillation (alpha = 1, T = 4) of a 100-class teacher into a small student with SGD, KL divergence averaged over the batch (reduction='batchmean')."""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic 100-class problem with confusable class pairs ----
g = torch.Generator().manual_seed(1)
C, D = 100, 64
proto = torch.randn(C // 2, D, generator=g)
centers = torch.cat([proto, proto + 0.6 * torch.randn(C // 2, D, generator=g)])   # classes come in similar pairs


def sample(n):
    yy = torch.randint(0, C, (n,), generator=g)
    return centers[yy] + 0.9 * torch.randn(n, D, generator=g), yy


x_lab, y_lab = sample(8000)          # labelled data the teacher was trained on
x_transfer, _ = sample(16000)        # unlabelled transfer set for distillation
x_val, y_val = sample(4000)

# ---- teacher: trained with labels (stands in for a pretrained model) ----
teacher = nn.Sequential(nn.Linear(D, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, C))
t_opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
for epoch in range(4):
    perm = torch.randperm(len(x_lab))
    for s in range(0, len(x_lab), 128):
        idx = perm[s:s + 128]
        t_loss = F.cross_entropy(teacher(x_lab[idx]), y_lab[idx])
        t_opt.zero_grad(); t_loss.backward(); t_opt.step()
teacher.eval()
with torch.no_grad():
    print(f"teacher val_acc {(teacher(x_val).argmax(1) == y_val).float().mean():.3f}")

# ---- student: distilled from teacher soft targets only ----
T, ALPHA = 4.0, 1.0
student = nn.Sequential(nn.Linear(D, 128), nn.ReLU(), nn.Linear(128, C))
opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
kd_criterion = nn.KLDivLoss(reduction="batchmean")

for epoch in range(8):
    student.train()
    perm = torch.randperm(len(x_transfer))
    tot, nb = 0.0, 0
    for s in range(0, len(x_transfer), 128):
        xb = x_transfer[perm[s:s + 128]]
        with torch.no_grad():
            soft = F.softmax(teacher(xb) / T, dim=1)
        loss = ALPHA * kd_criterion(F.log_softmax(student(xb) / T, dim=1), soft) * T * T
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    student.eval()
    with torch.no_grad():
        logits = student(x_val)
        acc = (logits.argmax(1) == y_val).float().mean().item()
        agree = (logits.argmax(1) == teacher(x_val).argmax(1)).float().mean().item()
    print(f"epoch {epoch} kd_loss {tot / nb:.5f} val_acc {acc:.3f} agreement_with_teacher {agree:.3f}")
