"""ReLU RNN with identity-initialised recurrent weights (IRNN) regressing a signed running sum over 50 steps, trained
with SGD and momentum and gradient clipping at max_norm=1.0."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

T, hidden = 50, 64


def make_batch(n):
    x = torch.randn(n, T, 3)
    y = (x[:, :, 0].sum(1) - 0.5 * x[:, :, 1].sum(1)).unsqueeze(1) / T ** 0.5
    return x, y


class IRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, hidden, batch_first=True, nonlinearity="relu")
        self.head = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(torch.eye(hidden))
            self.rnn.bias_hh_l0.zero_()

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


model = IRNN()
optimizer = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9)

for step in range(1, 301):
    x, y = make_batch(64)
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    if step % 25 == 0:
        print(f"step {step} mse {loss.item():.4f} (target variance 1.25)")
