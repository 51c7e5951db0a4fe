"""compare's numerics on real exports: -inf attention masks are by design, tolerances follow the dtype."""

from __future__ import annotations

import io
import logging
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from modeldebug.onnx import ONNXConfig, compare
from modeldebug.onnx.tolerance import DTYPE_TOLERANCES, compare_arrays, lowest_precision, tolerance_for
from modeldebug.testing import healthy_transformer

FAST = ONNXConfig(op_level=False)


def export(model: nn.Module, args: tuple[torch.Tensor, ...], *, dynamo: bool) -> onnx.ModelProto:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(model, args, dynamo=True, verbose=False).model_proto
        buf = io.BytesIO()
        torch.onnx.export(model, args, buf, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


class MaskedAttention(nn.Module):
    """Hand-written causal self-attention: scores + a constant with -inf above the diagonal."""

    def __init__(self, *, diagonal: int = 1) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Linear(8, 8)
        self.diagonal = diagonal  # 0 also masks the diagonal: the first row is all -inf, softmax gives NaN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(8)
        mask = torch.triu(torch.full((x.shape[1], x.shape[1]), float("-inf")), self.diagonal)
        return self.out(torch.softmax(scores + mask, -1) @ v)


class PaddedEncoder(nn.Module):
    """A BERT-like encoder: token ids and an attention mask (1 = token, 0 = padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(ids), src_key_padding_mask=mask == 0)[:, 0])


def attention(diagonal: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return MaskedAttention(diagonal=diagonal).eval()


X = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module", params=[True, False], ids=["dynamo", "torchscript"])
def attention_export(request: pytest.FixtureRequest) -> onnx.ModelProto:
    return export(attention(), (X,), dynamo=request.param)


def test_minus_inf_attention_mask_is_not_a_finding(attention_export: onnx.ModelProto) -> None:
    r = compare(attention(), attention_export, X.numpy(), FAST)
    assert r.passed and r.findings == [] and r.first_nonfinite is None
    assert r.nonfinite_by_design is not None and r.nonfinite_by_design["values"] >= 1
    assert "by design" in r.to_text()


def test_fully_masked_row_still_reports_nan() -> None:
    """The faulty twin: the diagonal masked too, so softmax of an all -inf row is NaN, in PyTorch as well."""
    model = attention(diagonal=0)
    r = compare(model, export(model, (X,), dynamo=True), X.numpy(), FAST)
    n = r.first_nonfinite
    assert n is not None and n["op_type"] == "Softmax" and n["nan"] and n["torch_nonfinite"]
    (f,) = [f for f in r.findings if f.code == "ONX102"]
    assert f.severity == "medium" and "NaN" in f.title  # the model's own arithmetic, faithfully exported


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_padding_mask_of_a_bert_like_encoder_is_by_design(dynamo: bool) -> None:
    torch.manual_seed(0)
    model = PaddedEncoder().eval()
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    r = compare(model, export(model, (ids, mask), dynamo=dynamo), [ids.numpy(), mask.numpy()], FAST)
    assert r.passed and [f.code for f in r.findings] == []
    assert r.nonfinite_by_design is not None


# -- tolerances by dtype --------------------------------------------------------------------------
def test_tolerance_follows_the_lowest_precision() -> None:
    assert lowest_precision([np.float32, np.int64, np.float16]) == "float16"
    assert lowest_precision([np.int64]) == "float32"
    t = tolerance_for([np.float16])
    assert (t.atol, t.rtol, t.given) == (*DTYPE_TOLERANCES["float16"], False)
    assert "default for float16" in t.describe()
    given = tolerance_for([np.float16], atol=1e-6)
    assert given.atol == 1e-6 and given.rtol == DTYPE_TOLERANCES["float16"][1] and "given" in given.describe()
    # fp16 rounding of 2.4e-4 on a value of 0.1 passes at fp16's tolerance and fails at fp32's
    ref = np.full(4, 0.1, np.float16)
    got = ref + np.float16(2.4e-4)
    assert compare_arrays(got, ref, atol=t.atol, rtol=t.rtol).passed
    fp32 = tolerance_for([np.float32])
    assert not compare_arrays(got, ref, atol=fp32.atol, rtol=fp32.rtol).passed


@pytest.fixture(scope="module")
def half_transformer() -> tuple[nn.Module, onnx.ModelProto, np.ndarray]:
    model = healthy_transformer()[0].eval().half()
    x = (3 * torch.randn(2, 8, 6, generator=torch.Generator().manual_seed(0))).half()
    return model, export(model, (x,), dynamo=True), x.numpy()


def test_fp16_export_is_judged_at_fp16_tolerance(
        half_transformer: tuple[nn.Module, onnx.ModelProto, np.ndarray]) -> None:
    model, m, x = half_transformer
    r = compare(model, m, x, FAST)
    assert r.passed and r.findings == []
    assert r.atol == DTYPE_TOLERANCES["float16"][0] and "default for float16" in r.tolerance_note
    assert "default for float16" in r.to_text().splitlines()[0]
    assert max(o["stats"].max_abs for o in r.outputs) == pytest.approx(2.44e-4, rel=0.01)  # fp16 rounding is there
    strict = compare(model, m, x, ONNXConfig(op_level=False, atol=1e-4, rtol=1e-3))  # fp32's tolerance cries wolf
    assert not strict.passed and "ONX101" in [f.code for f in strict.findings]
    assert strict.tolerances["float16"]["given"] and "(given)" in strict.tolerance_note
