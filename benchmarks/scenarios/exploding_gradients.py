# expect: exploding_gradients
"""A vanilla RNN over long sequences, initialised with a large recurrent weight, no clipping."""
import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 60, 4)
y = x[:, :, 0].sum(1, keepdim=True) / 8


class RNNRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 32, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(32, 1)
        nn.init.normal_(self.rnn.weight_hh_l0, std=0.2)  # the bug: recurrent gain > 1 over 60 steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(h[:, -1])


model = RNNRegressor()
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
for step in range(40):
    idx = torch.randint(0, 256, (32,))
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x[idx]), y[idx])
    loss.backward()
    opt.step()
print(loss.item())
