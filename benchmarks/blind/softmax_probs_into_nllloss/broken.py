"""Character-level RNN name classifier (tutorial style): the output layer is nn.Softmax and the loss is nn.NLLLoss."""
import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_num_threads(1)

letters = "abcdefghijklmnopqrstuvwxyz"
n_letters, n_langs = len(letters), 4
# each "language" prefers its own subset of letters
prefs = [torch.softmax(3 * torch.randn(n_letters), 0) for _ in range(n_langs)]


def make_name(lang):
    length = int(torch.randint(4, 9, ()).item())
    return torch.multinomial(prefs[lang], length, replacement=True)


def one_hot(idx):
    t = torch.zeros(len(idx), 1, n_letters)
    t[torch.arange(len(idx)), 0, idx] = 1.0
    return t


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x, hidden):
        combined = torch.cat((x, hidden), 1)
        hidden = torch.tanh(self.i2h(combined))
        output = self.softmax(self.i2o(combined))
        return output, hidden

    def init_hidden(self):
        return torch.zeros(1, self.hidden_size)


rnn = RNN(n_letters, 64, n_langs)
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.005)

running = 0.0
for it in range(1, 2001):
    lang = int(torch.randint(0, n_langs, ()).item())
    name = one_hot(make_name(lang))
    target = torch.tensor([lang])
    hidden = rnn.init_hidden()
    optimizer.zero_grad()
    for i in range(name.size(0)):
        output, hidden = rnn(name[i], hidden)
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()
    running += loss.item()
    if it % 500 == 0:
        print(f"iter {it} avg loss {running / 500:.4f}")
        running = 0.0
