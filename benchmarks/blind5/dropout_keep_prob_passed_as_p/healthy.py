"""Action-recognition head ported from TensorFlow: the TF keep probability is converted to PyTorch's drop probability (1 - keep_prob) for nn.Dropout."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic clips: 24 frames of 2-D pose keypoints (17 joints), 6 actions with distinct motion patterns ----
g = torch.Generator().manual_seed(1)
T, J, N_CLS = 24, 17, 6
base_pose = torch.randn(J, 2, generator=g)
motion = torch.randn(N_CLS, J, 2, generator=g)            # which joints move, per action
freq = torch.linspace(0.5, 2.0, N_CLS)


def make_clips(n):
    y = torch.randint(0, N_CLS, (n,), generator=g)
    phase = 6.28 * torch.rand(n, 1, generator=g)
    tt = torch.arange(T).float()[None, :]
    wave = torch.sin(6.28 * freq[y][:, None] * tt / T + phase)                       # (n, T)
    clips = base_pose + wave[:, :, None, None] * motion[y][:, None] * 0.25              # (n, T, J, 2)
    clips = clips + 1.0 * torch.randn(clips.shape, generator=g)
    return clips.reshape(n, T, J * 2), y


x_train, y_train = make_clips(4000)
x_val, y_val = make_clips(1500)


class ActionNet(nn.Module):
    def __init__(self, n_cls, dropout_keep_prob=1.0):
        super().__init__()
        self.temporal = nn.Sequential(
            nn.Conv1d(J * 2, 48, 5, padding=2), nn.BatchNorm1d(48), nn.ReLU(),
            nn.Conv1d(48, 128, 5, padding=2), nn.BatchNorm1d(128), nn.ReLU(),
        )
        self.dropout = nn.Dropout(1 - dropout_keep_prob)
        self.logits = nn.Linear(128, n_cls)

    def forward(self, x):
        h = self.temporal(x.transpose(1, 2)).mean(2)       # average over time
        return self.logits(self.dropout(h))


model = ActionNet(N_CLS)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(6):
    model.train()
    perm = torch.randperm(len(y_train))
    tot, correct, nb = 0.0, 0, 0
    for s in range(0, len(perm), 64):
        idx = perm[s:s + 64]
        out = model(x_train[idx])
        loss = loss_fn(out, y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
        correct += (out.argmax(1) == y_train[idx]).sum().item()
    model.eval()
    with torch.no_grad():
        val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} train_acc {correct / len(y_train):.3f} val_acc {val_acc:.3f}")
