"""Faulty models for the agent's tests, each with the bug written the way people write it."""

from __future__ import annotations

import torch
from torch import nn

from modeldebug.testing import classification


def batch(n: int = 64, features: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    data = classification(features=features)
    return data.x[:n], data.y[:n]


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def dead_relu() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # every unit of the first ReLU is negative for every input
    return model


def double_softmax() -> nn.Sequential:
    return nn.Sequential(mlp(), nn.Softmax(dim=1))  # then fed to CrossEntropyLoss


class BatchMixing(nn.Module):
    """Flattens with the batch axis in the wrong place: `.t().reshape(batch, -1)` mixes samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.fc2(h.t().reshape(x.shape[0], -1))


class Detached(nn.Module):
    """The encoder's output is detached: the encoder never learns."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).detach())


def shape_mismatch() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(400, 3))


class InPlace(nn.Module):
    """Adds to sigmoid's output in place, which sigmoid's backward needs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.fc(x))
        h += 1.0
        return h


def sgd(lr: float):  # type: ignore[no-untyped-def]
    return lambda params: torch.optim.SGD(params, lr=lr)


# -- models for the probes' margins, the causality probe and the structural checks --------------------
class LSTMClassifier(nn.Module):
    """A healthy LSTM that learns slowly: after 60 steps zeroed inputs end only ~7% behind real ones."""

    def __init__(self, seed: int = 0, hidden: int = 16) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = nn.LSTM(4, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def sequences(n: int = 64, steps: int = 12, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes from the signs of two running sums: learnable, slowly, by a recurrent model."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 4, generator=g)
    y = (x[:, :, 0].sum(1) > 0).long() * 2 + (x[:, :, 1].sum(1) > 0).long()
    return x, y


def random_labels(n: int = 64, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The usual inputs with labels drawn at random: only memorising the inputs lowers the loss."""
    x, _ = batch(n)
    g = torch.Generator().manual_seed(seed)
    return x, torch.randint(0, 3, (n,), generator=g)


class TinyGPT(nn.Module):
    """A two-layer decoder over a 16-token vocabulary; `causal=False` is the bug: no attention mask."""

    def __init__(self, *, causal: bool = True, vocab: int = 16, width: int = 32, context: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.causal = causal
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(width, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tokens(idx) + self.positions(torch.arange(t, device=idx.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t) if self.causal else None
        return self.head(self.blocks(h, mask=mask, is_causal=self.causal))


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def token_batch(n: int = 16, length: int = 12, vocab: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for next-token prediction: the targets are the inputs shifted by one."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    seq = (start + step * torch.arange(length + 1)) % vocab  # arithmetic sequences: predictable from the past
    return seq[:, :-1], seq[:, 1:]


def frozen() -> nn.Sequential:
    model = mlp()
    model.requires_grad_(False)  # e.g. a backbone frozen for fine-tuning, and the new head frozen with it
    return model


def all_zero() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # "initialise to zero": every unit computes the same thing, forever
    return model


def batchnorm_net(norm: str = "batch") -> nn.Sequential:
    torch.manual_seed(0)
    layer = {"batch": nn.BatchNorm2d(8), "group": nn.GroupNorm(2, 8)}[norm]
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), layer, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def images(n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    return x, (x[:, 0].mean((1, 2)) > 0).long()
