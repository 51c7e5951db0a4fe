"""Sentence-pair (NLI-style) classifier whose hidden layers are kept in a plain Python list, so they are not registered and never reach the optimizer."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

# ---- synthetic premise/hypothesis sentence vectors; the label (entailment / neutral / contradiction)
# depends on which of 24 "frames" each sentence belongs to, through a fixed relation table ----
g = torch.Generator().manual_seed(1)
D, FRAMES = 40, 24
frames = torch.randn(FRAMES, D, generator=g)
relation = torch.randint(0, 3, (FRAMES, FRAMES), generator=g)
mixing = torch.randn(D, D, generator=g) / D ** 0.5


def encode(v):
    return torch.tanh(v @ mixing)


def sample(n):
    a = torch.randint(0, FRAMES, (n,), generator=g)
    b = torch.randint(0, FRAMES, (n,), generator=g)
    prem = encode(frames[a] + 0.45 * torch.randn(n, D, generator=g))
    hyp = encode(frames[b] + 0.45 * torch.randn(n, D, generator=g))
    return prem, hyp, relation[a, b]


train, val = sample(20000), sample(5000)
options = {"n_layers": 3, "n_hid": 128, "act": "ReLU"}


class SNLINet(nn.Module):
    def __init__(self, options):
        super().__init__()
        self.inp = nn.Linear(4 * D, options["n_hid"])
        self.hids = []
        for li in range(options["n_layers"]):
            self.hids.append(nn.Sequential(nn.Linear(options["n_hid"], options["n_hid"]), getattr(nn, options["act"])()))
        self.classifier = nn.Linear(options["n_hid"], 3)

    def forward(self, p, h):
        x = torch.relu(self.inp(torch.cat([p, h, (p - h).abs(), p * h], 1)))
        for layer in self.hids:
            x = layer(x)
        return self.classifier(x)


model = SNLINet(options)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
print(f"trainable parameters: {sum(p.numel() for p in model.parameters())}")
for epoch in range(6):
    model.train()
    perm = torch.randperm(len(train[2]))
    tot, nb = 0.0, 0
    for s in range(0, len(perm), 128):
        idx = perm[s:s + 128]
        loss = loss_fn(model(train[0][idx], train[1][idx]), train[2][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item(); nb += 1
    model.eval()
    with torch.no_grad():
        out = model(val[0], val[1])
        acc = (out.argmax(1) == val[2]).float().mean().item()
    print(f"epoch {epoch} train_loss {tot / nb:.4f} val_loss {loss_fn(out, val[2]).item():.4f} val_acc {acc:.3f}")
