"""A tiny character-level language model the behaviour tests train themselves (no weights downloaded).

An MLP over the last 24 characters predicts the next one. Trained for a few hundred full-batch Adam
steps on "question answer" lines of the bundled facts it answers them; an untrained copy produces
noise. `CharModel.generate` decodes greedily at temperature 0 and samples otherwise, seeded from the
`seed` option or ``zlib.crc32(prompt)`` (never ``hash()``, which changes between processes).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from modeldebug.behaviour.datasets import Fact, load_facts

__all__ = ["CharLM", "CharModel", "corpus", "one_thread", "trained", "untrained"]

CONTEXT = 24
PAD, UNK, END = "\x00", "\x01", "\n"


class CharLM(nn.Module):
    """Embedding of the last CONTEXT characters -> tanh MLP -> next-character logits."""

    def __init__(self, vocab: int, *, emb: int = 16, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.fc1 = nn.Linear(CONTEXT * emb, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.tanh(self.fc1(self.emb(idx).flatten(1)))))


class CharModel:
    """`generate(prompt)` for a CharLM: continue the prompt until a newline or max_tokens characters."""

    def __init__(self, lm: CharLM, vocab: list[str], name: str = "charmodel") -> None:
        self.model = lm
        self.vocab = vocab
        self.stoi = {c: i for i, c in enumerate(vocab)}
        self.name = name

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, 1) for c in text]

    @torch.no_grad()
    def generate(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> str:
        g = torch.Generator().manual_seed(zlib.crc32(prompt.encode()) if seed is None else seed)
        ids = [0] * CONTEXT + self.encode(prompt + " ")
        out = []
        for _ in range(max_tokens or 32):
            logits = self.model(torch.tensor([ids[-CONTEXT:]]))[0]
            if temperature:
                nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=g))
            else:
                nxt = int(logits.argmax())
            c = self.vocab[nxt]
            if c == END:
                break
            out.append(c)
            ids.append(nxt)
        return "".join(out).strip()


#: Two lines besides the facts, so the runs-at-all smoke prompts get an answer instead of nothing.
SMALL_TALK = [f"Hello Hello!{END}", f"Complete the sentence: The cat sat on the mat.{END}"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for the block (module-scoped fixtures run before conftest pins it).

    Two OpenMP threads on a busy two-core machine made training and generation 10-100x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def corpus(facts: list[Fact]) -> list[str]:
    return [f"{f.prompt} {f.answers[0]}{END}" for f in facts] + SMALL_TALK


def _vocab() -> list[str]:
    facts, _ = load_facts()
    chars = set("".join(corpus(facts)))
    return [PAD, UNK, END, *sorted(chars - {PAD, UNK, END})]


def _fresh(*, seed: int = 0) -> CharModel:
    vocab = _vocab()
    torch.manual_seed(seed)
    return CharModel(CharLM(len(vocab)), vocab)


@functools.lru_cache(maxsize=None)
def trained(*, skip: str = "units", steps: int = 150) -> CharModel:
    """Trained on every bundled fact except the capability `skip` (so that group stays unknown).

    Cached: the tests of one process train it once (about 2-5 s on one CPU thread).
    """
    cm = _fresh()
    facts, _ = load_facts()
    xs, ys = [], []
    for line in corpus([f for f in facts if f.capability != skip]):
        ids = [0] * CONTEXT + cm.encode(line)
        for i in range(CONTEXT, len(ids)):
            xs.append(ids[i - CONTEXT:i])
            ys.append(ids[i])
    x, y = torch.tensor(xs), torch.tensor(ys)
    torch.manual_seed(1)
    opt = torch.optim.Adam(cm.model.parameters(), lr=3e-3)
    with one_thread():
        for _ in range(steps):
            loss = nn.functional.cross_entropy(cm.model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    cm.model.eval()
    cm.name = f"charmodel trained ({steps} steps)"
    return cm


def untrained(*, seed: int = 0) -> CharModel:
    """The same architecture, freshly initialised: what you get when a checkpoint does not load."""
    cm = _fresh(seed=seed)
    cm.model.eval()
    cm.name = "charmodel untrained"
    return cm
