"""One module with an odd output is skipped alone; every other probe keeps measuring.

Real modules whose output has no plain floating-point data to reduce: a meta tensor, a sparse
tensor, a nested tensor, a complex tensor, a quantized tensor, an integer tensor. Each sits inside a
small trained model; the run must record that module as skipped (once, with the reason) and still
measure every other module, the gradients and the loss on every step.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture import stats as S

STEPS = 6
BATCH = 8


class ToSparse(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).to_sparse()


class ToDense(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to_dense()


class MetaShapeCheck(nn.Module):
    """Checks the head's output shape on the meta device (no data, no cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.twin = nn.Linear(8, 2, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.twin(x.detach().to("meta"))


class Ragged(nn.Module):
    """Row i keeps its first 1 + i % 8 features: a nested (ragged) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nested.as_nested_tensor([x[i, : 1 + i % 8] for i in range(x.shape[0])], layout=torch.jagged)


class Pad(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nested.to_padded_tensor(x, 0.0)


class Spectrum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(x)


class Magnitude(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class Quantize(nn.Module):
    """Keeps an 8-bit copy of the features (say, for a replay buffer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.quantize_per_tensor(x.detach(), 0.05, 128, torch.quint8)


class Bucketize(nn.Module):
    """Quantile bins of the first feature, as class indices."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor([-1.0, 0.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(x[:, 0].detach().contiguous(), self.edges)


class Net(nn.Module):
    def __init__(self, odd: str) -> None:
        super().__init__()
        self.odd = odd
        self.fc = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 2)
        if odd == "sparse":
            self.sparsify, self.densify = ToSparse(), ToDense()
        elif odd == "meta":
            self.shape_check = MetaShapeCheck()
        elif odd == "nested":
            self.ragged, self.pad = Ragged(), Pad()
        elif odd == "complex":
            self.spectrum, self.magnitude = Spectrum(), Magnitude()
        elif odd == "quantized":
            self.quantize = Quantize()
            self.dequantize = torch.ao.nn.quantized.DeQuantize()
        elif odd == "integer":
            self.bucketize = Bucketize()
            self.bins = nn.Embedding(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        if self.odd == "sparse":
            h = self.densify(self.sparsify(h))
        elif self.odd == "nested":
            h = self.pad(self.ragged(h))
        elif self.odd == "complex":
            h = self.magnitude(self.spectrum(h))
        elif self.odd == "quantized":
            h = h + 0.0 * self.dequantize(self.quantize(h))
        elif self.odd == "integer":
            h = h + self.bins(self.bucketize(x))
        out = self.head(h)
        if self.odd == "meta":
            assert self.shape_check(h).shape == out.shape
        return out


SKIPPED = {"sparse": ("sparsify", "sparse_coo"), "meta": ("shape_check.twin", "meta"),
           "nested": ("ragged", "nested"), "complex": ("spectrum", "complex64"),
           "quantized": ("quantize", "quint8"), "integer": ("bucketize", "int64")}


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("odd", list(SKIPPED))
def test_an_odd_module_output_skips_that_module_only(odd: str) -> None:
    torch.manual_seed(0)
    model = Net(odd)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        for _ in range(STEPS):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(torch.randn(BATCH, 4)), torch.randint(0, 2, (BATCH,)))
            loss.backward()
            opt.step()
    rec = s.record
    assert rec.events("internal_error") == []
    name, why = SKIPPED[odd]
    skipped = [e.data for e in rec.events("module_skipped")]
    assert [d["module"] for d in skipped] == [name]  # recorded once, although sampled on every step
    assert why in skipped[0]["reason"]
    # Every other probe kept going: activations of the plain modules on every sampled step,
    # gradient norms and the loss too.
    sampled = [int(i) for i, v in zip(rec.column("sampled").steps, rec.column("sampled").values) if v]
    assert len(sampled) >= 3  # the odd module is met on the first; the rest must follow
    for module in ("fc", "act", "head"):
        assert rec.series(module, "mean").steps.tolist() == sampled, module
    # the total gradient norm on every step, per-parameter norms on the sampled steps
    assert len(rec.column("grad_norm").finite()) == STEPS
    assert rec.series("head.weight", "grad_norm").steps.tolist() == sampled
    assert len(rec.column("loss").finite()) == STEPS


def test_sparse_gradients_are_measured() -> None:
    """nn.Embedding(sparse=True) gives sparse gradients: their norm is measured, nothing is switched off."""
    torch.manual_seed(0)
    emb = nn.Embedding(10, 4, sparse=True)
    head = nn.Linear(4, 2)
    model = nn.Sequential(emb, nn.Flatten(), head)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    norms = []
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(3):
            opt.zero_grad()
            ids = torch.randint(0, 10, (BATCH, 1))
            nn.functional.cross_entropy(model(ids), torch.randint(0, 2, (BATCH,))).backward()
            norms.append(float(emb.weight.grad.to_dense().norm()))
            opt.step()
    rec = s.record
    assert rec.events("internal_error") == []
    assert rec.series("0.weight", "grad_norm").values.tolist() == pytest.approx(norms, rel=1e-6)
    assert len(rec.series("2.weight", "grad_norm")) == 3
    assert rec.events("module_skipped") == []


def test_unmeasurable_names_the_reason() -> None:
    assert S.unmeasurable(torch.ones(3)) is None
    assert S.unmeasurable(torch.ones(3, dtype=torch.bfloat16)) is None
    assert "meta" in S.unmeasurable(torch.ones(3, device="meta"))
    assert "sparse_coo" in S.unmeasurable(torch.ones(3).to_sparse())
    assert "complex" in S.unmeasurable(torch.ones(3, dtype=torch.complex64))
    assert "bool" in S.unmeasurable(torch.ones(3, dtype=torch.bool))
