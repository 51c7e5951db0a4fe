"""Two-layer regression example in the style of a library's getting-started script: the loop never clears gradients."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

x = torch.rand(64, 4)
w_true = torch.tensor([[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1], [0.3, 0.3]])
y = torch.tanh(x @ w_true) + 0.01 * torch.randn(64, 2)

model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(200):
    pred = model(x)
    loss = nn.functional.mse_loss(pred, y)
    loss.backward()
    opt.step()
    if epoch % 20 == 0:
        print(f"Loss error: {loss.item():.10f}")
print(f"final loss {loss.item():.6f}")
