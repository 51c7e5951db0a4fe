"""Six-hidden-layer tanh MLP whose weights are Xavier-initialised with the tanh gain and zero biases."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

n, d, n_classes = 4000, 20, 4
x = torch.randn(n, d)
y = (x[:, :3] @ torch.randn(3, n_classes)).argmax(1)

layers, width, prev = [], 64, d
for _ in range(6):
    layers += [nn.Linear(prev, width), nn.Tanh()]
    prev = width
layers.append(nn.Linear(prev, n_classes))
model = nn.Sequential(*layers)


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
        nn.init.zeros_(m.bias)


model.apply(init_weights)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
criterion = nn.CrossEntropyLoss()

for epoch in range(5):
    perm = torch.randperm(3200)
    total = 0.0
    for s in range(0, 3200, 64):
        idx = perm[s:s + 64]
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        acc = (model(x[3200:]).argmax(1) == y[3200:]).float().mean().item()
    print(f"epoch {epoch} loss {total / 3200:.4f} val acc {acc:.3f}")
