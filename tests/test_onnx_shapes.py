"""Shapes on real exports: `inspect` counts attention MatMuls with dynamic dims resolved (and says what
it could not count), and ONX010 names the baked axis, keeps onnxruntime's whole message, gives a fix
for the exporter used, and stays quiet when a Split's sizes come from the model's input data."""

from __future__ import annotations

import io
import logging
import warnings

import onnx
import pytest
import torch
from test_onnx_numerics import PaddedEncoder
from torch import nn

from modeldebug.onnx import check, inspect

logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def dynamo_export(model: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], dynamic: tuple[dict, ...]
                  ) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(model, args, dynamo=True, input_names=names, dynamic_shapes=dynamic,
                                 verbose=False).model_proto


def torchscript_export(model: nn.Module, args: tuple[torch.Tensor, ...], names: list[str],
                       axes: dict[str, dict[int, str]]) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, dynamo=False, input_names=names, dynamic_axes=axes)
    return onnx.load_from_string(buf.getvalue())


@pytest.fixture(scope="module")
def encoder() -> onnx.ModelProto:
    torch.manual_seed(0)
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(1))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    return dynamo_export(PaddedEncoder().eval(), (ids, torch.ones(2, 6, dtype=torch.long)), ["ids", "mask"],
                         ({0: batch, 1: seq}, {0: batch, 1: seq}))


def encoder_macs(seq: int, batch: int = 1) -> int:
    """MACs of PaddedEncoder (d=16, 2 heads, ff 32, one layer, head on token 0), from its definition."""
    d, ff = 16, 32
    projections = seq * d * 3 * d + seq * d * d          # in_proj (q, k, v) and out_proj
    attention = 2 * seq * seq * d                        # q @ k^T and weights @ v, over all heads
    feed_forward = seq * d * ff + seq * ff * d
    return batch * (projections + attention + feed_forward + d * 2)


def test_bert_like_macs_count_attention_at_batch_one(encoder: onnx.ModelProto) -> None:
    r = inspect(encoder)  # batch and seq symbolic: both set to 1, and said
    assert r.uncounted == [] and r.total_macs == encoder_macs(1)
    assert r.symbolic_set_to_one == ["batch", "seq"] and "set to 1" in r.to_text()
    r6 = inspect(encoder, input_shapes={"ids": [1, 6], "mask": [1, 6]})
    assert r6.uncounted == [] and r6.total_macs == encoder_macs(6) and r6.symbolic_set_to_one == []
    attention = [n for n in r6.nodes if n.op_type == "MatMul" and n.macs == 6 * 6 * 16]  # q@k^T, w@v: all heads
    assert len(attention) == 2, "the attention MatMuls must be counted"
    assert inspect(encoder, input_shapes={"ids": [3, 6], "mask": [3, 6]}).total_macs == encoder_macs(6, 3)


class Selected(nn.Module):
    """Rows picked by a data-dependent mask, then a Linear: the row count is unknown until run time."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[x.sum(1) > 0])


def test_what_cannot_be_counted_is_named_with_the_reason() -> None:
    torch.manual_seed(0)
    m = torchscript_export(Selected().eval(), (torch.randn(4, 8),), ["x"], {"x": {0: "batch"}})
    r = inspect(m)
    (u,) = r.uncounted
    assert u["op_type"] == "Gemm" and "shape" in u["reason"] and "depends on the data (NonZero" in u["reason"]
    assert "NOT counted: 1 compute node(s)" in r.to_text() and u["node"] in r.to_text()


class FixedWidth(nn.Module):
    """Flattens with a Python int: the sequence length of the export is baked into the Reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(48, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(x.shape[0], 6 * 8))


def test_baked_axis_is_named_with_the_whole_message_and_a_fitting_fix() -> None:
    m = torchscript_export(FixedWidth(), (torch.randn(2, 6, 8),), ["x"], {"x": {0: "batch", 1: "seq"}})
    (f,) = [f for f in check(m) if f.code == "ONX010"]
    assert f.evidence["axes"] == ["seq"] and "'seq' (input 'x' axis 1)" in f.title
    assert f.location == "/Reshape" and f.severity == "high"
    # onnxruntime's message whole, down to the shapes it ends with
    assert f.evidence["error"].endswith("requested shape:{2,48}") and f.evidence["error"] in f.description
    fix = f.recommendations[0]
    assert "view/reshape" in fix.description and "'x' axis 1 (seq)" in fix.description
    assert "dynamic_axes={'x': {0: 'batch', 1: 'seq'}}" in fix.implementation  # the exporter this file came from


class SplitBySizes(nn.Module):
    """torch.split with sizes read from an input tensor: the Split's `split` input is data."""

    def forward(self, x: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        a, b = sizes.tolist()
        torch._check(a >= 0)
        torch._check(b >= 0)
        torch._check(a + b == x.shape[1])
        p, q = torch.split(x, [a, b], dim=1)
        return p.sum(1) + q.sum(1)


def test_split_sizes_from_data_are_not_a_baked_axis() -> None:
    m = dynamo_export(SplitBySizes(), (torch.randn(2, 6), torch.tensor([2, 4])), ["x", "sizes"],
                      ({0: torch.export.Dim("batch")}, None))
    assert "Split" in {n.op_type for n in m.graph.node}
    assert [f.code for f in check(m) if f.code == "ONX010"] == []
