"""PRF002: token batches padded to a fixed length, not to their longest sequence (blind10: tickets of ~20
tokens padded to 128). Twins: the same batches padded to their longest sequence; a recurrent model padded
to a fixed length (it may pack its sequences: low); an embedding read one id per sample."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import modeldebug as md

PAD, V = 0, 200


class _Bag(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.emb = nn.Embedding(V, 16, padding_idx=PAD)
        self.mix = {"gru": lambda: nn.GRU(16, 16, batch_first=True),
                    "attention": lambda: nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)}.get(kind, lambda: None)()
        self.flat = nn.Flatten() if kind == "flatten" else None
        self.out = nn.Linear(16 * 64 if kind == "flatten" else 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        if self.flat is not None:  # a layer sized for the padded length: the length is fixed
            return self.out(self.flat(h))
        if self.kind == "gru":
            h = self.mix(h)[0]
        elif self.kind == "attention":
            h = self.mix(h, src_key_padding_mask=x == PAD)
        keep = (x != PAD).unsqueeze(2).float()
        return self.out((h * keep).sum(1) / keep.sum(1).clamp_min(1))


def _run(fixed: bool, kind: str = "attention"):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = _Bag(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(40):
            lengths = torch.randint(5, 21, (32,), generator=g)
            width = 64 if fixed else int(lengths.max())
            x = torch.full((32, width), PAD)
            for i, n in enumerate(lengths.tolist()):
                x[i, :n] = torch.randint(1, V, (n,), generator=g)
            y = (x[:, 0] % 2).long()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report().findings


@pytest.mark.parametrize("kind", ["attention", "bag", "gru"])
def test_batches_padded_to_a_fixed_length_are_found(kind: str) -> None:
    """Medium under attention (any length works, and every pair of positions is computed); low for a
    pooled bag of embeddings (cheap after the pooling) and a GRU (it may pack its sequences)."""
    (f,) = [f for f in _run(fixed=True, kind=kind) if f.code == "PRF002"]
    assert f.severity == ("medium" if kind == "attention" else "low") and f.location == "emb"
    assert f.evidence["padding_columns_share"] >= 0.6  # at most 20 of 64 positions used
    assert "max(len(ids)" in f.recommendations[0].implementation


@pytest.mark.parametrize("how", ["longest", "flatten"])
def test_batches_padded_as_the_model_needs_are_left_alone(how: str) -> None:
    """Padded to their longest sequence; or to the length a Flatten -> Linear head is built for."""
    findings = _run(fixed=how == "flatten", kind="flatten" if how == "flatten" else "attention")
    assert not [f for f in findings if f.code == "PRF002"]
